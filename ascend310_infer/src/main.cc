// RepVGG inference harness on the MindSpore C++ inference API (after the MindSpore ModelZoo RepVGG's ascend310_infer).
//
// Loads a MINDIR with Model::Build(path, ModelType::kMindIR, context) on an Ascend device or on the CPU, runs
// every .bin file of --input_path through it and writes one result file per input and output. The only
// device-specific code is the choice of DeviceInfoContext in MakeContext, so the CPU build (MindSpore Lite)
// exercises everything the Ascend 310 build runs.
//
// Exit codes: 0 success, 1 a failure while running (model, files), 2 a bad command line.
#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bin_files.h"
#include "include/api/context.h"
#include "include/api/model.h"
#include "include/api/status.h"
#include "include/api/types.h"
#include "options.h"

namespace fs = std::filesystem;

namespace repvgg {
namespace {

std::shared_ptr<mindspore::Context> MakeContext(const Options &options) {
  auto context = std::make_shared<mindspore::Context>();
  if (options.device_target == DeviceTarget::kAscend) {
    auto ascend = std::make_shared<mindspore::AscendDeviceInfo>();
    ascend->SetDeviceID(options.device_id);
    context->MutableDeviceInfo().push_back(ascend);
  } else {
    context->SetThreadNum(options.cpu_threads);
    context->MutableDeviceInfo().push_back(std::make_shared<mindspore::CPUDeviceInfo>());
  }
  return context;
}

std::string ShapeText(const std::vector<int64_t> &shape) {
  std::ostringstream text;
  text << "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    text << (i ? ", " : "") << shape[i];
  }
  text << ")";
  return text.str();
}

void CheckFloat32(const mindspore::MSTensor &tensor, const std::string &what) {
  if (tensor.DataType() != mindspore::DataType::kNumberTypeFloat32) {
    throw std::runtime_error(what + " '" + tensor.Name() + "' is not float32 (type id " +
                             std::to_string(static_cast<int>(tensor.DataType())) +
                             "); the .bin formats of this harness are float32");
  }
}

// Images per .bin file: the leading dimension of an NCHW input.
int64_t BatchSize(const mindspore::MSTensor &input) {
  const std::vector<int64_t> &shape = input.Shape();
  return (shape.size() == 4 && shape[0] > 0) ? shape[0] : 1;
}

void ReportLatency(const std::vector<double> &latencies_ms, int64_t batch_size) {
  const double total_ms = std::accumulate(latencies_ms.begin(), latencies_ms.end(), 0.0);
  const auto count = static_cast<double>(latencies_ms.size());
  std::cout << std::fixed << std::setprecision(3) << "inference of " << latencies_ms.size() << " files (batch "
            << batch_size << "): first " << latencies_ms.front() << " ms";
  // The first call also pays for lazy kernel set-up, so the steady state is reported without it.
  if (latencies_ms.size() > 1) {
    std::cout << ", mean of the others " << (total_ms - latencies_ms.front()) / (count - 1) << " ms";
  }
  // Per image slot: a padded last batch counts in full, as the device computes it in full.
  std::cout << "\nmean latency: " << total_ms / (count * static_cast<double>(batch_size)) << " ms/img" << std::endl;
}

// A model exported with a dynamic batch (export.py --dynamic_batch) gets the batch of the .bin files, read
// from the first file's size; the size check of every file then runs against the resized input.
std::vector<mindspore::MSTensor> ResizeDynamicBatch(mindspore::Model *model, std::vector<mindspore::MSTensor> inputs,
                                                    const fs::path &first_file) {
  std::vector<int64_t> shape = inputs.front().Shape();
  int64_t image_elements = 1;
  for (size_t i = 1; i < shape.size(); ++i) {
    if (shape[i] <= 0) {
      throw std::runtime_error("the model input " + ShapeText(shape) + " is dynamic beyond the batch dimension");
    }
    image_elements *= shape[i];
  }
  const uintmax_t image_bytes = static_cast<uintmax_t>(image_elements) * sizeof(float);
  const uintmax_t file_bytes = fs::file_size(first_file);
  if (file_bytes == 0 || file_bytes % image_bytes != 0) {
    throw std::runtime_error(first_file.string() + " has " + std::to_string(file_bytes) +
                             " bytes, not a whole number of float32 images of shape " + ShapeText(shape));
  }
  shape[0] = static_cast<int64_t>(file_bytes / image_bytes);
  const mindspore::Status status = model->Resize(inputs, {shape});
  if (status != mindspore::kSuccess) {
    throw std::runtime_error("cannot resize the model input to " + ShapeText(shape) + ": " + status.ToString());
  }
  return model->GetInputs();
}

void Run(const Options &options) {
  std::error_code error;
  if (!fs::is_regular_file(options.mindir_path, error)) {
    throw std::runtime_error("model file " + options.mindir_path + " does not exist or is not a file");
  }
  const std::vector<fs::path> input_files = ListBinFiles(options.input_path);
  EnsureFolder(options.result_path);

  mindspore::Model model;
  const mindspore::Status status =
      model.Build(options.mindir_path, mindspore::ModelType::kMindIR, MakeContext(options));
  if (status != mindspore::kSuccess) {
    const std::string hint =
        options.device_target == DeviceTarget::kCpu
            ? "MindSpore Lite 2.0 on CPU loads the MINDIR written by its converter (python -m src.deploy.lite "
              "--onnx_path ...), not one written by MindSpore 2.x"
            : "is the Ascend runtime installed and device " + std::to_string(options.device_id) + " free?";
    throw std::runtime_error("cannot build the model from " + options.mindir_path + ": " + status.ToString() + " (" +
                             hint + "; the log above has the details)");
  }
  std::vector<mindspore::MSTensor> inputs = model.GetInputs();
  if (inputs.size() != 1) {
    throw std::runtime_error("the model has " + std::to_string(inputs.size()) + " inputs; this harness feeds one");
  }
  CheckFloat32(inputs.front(), "model input");
  if (!inputs.front().Shape().empty() && inputs.front().Shape()[0] < 0) {
    inputs = ResizeDynamicBatch(&model, inputs, input_files.front());
  }
  mindspore::MSTensor &input = inputs.front();
  std::cout << "model " << options.mindir_path << ": input '" << input.Name() << "' " << ShapeText(input.Shape())
            << " float32, " << input.DataSize() << " bytes per .bin file; " << input_files.size() << " files"
            << std::endl;
  CheckFileSizes(input_files, input.DataSize());

  std::vector<double> latencies_ms;
  for (const fs::path &file : input_files) {
    ReadExactly(file, input.MutableData(), input.DataSize());
    std::vector<mindspore::MSTensor> outputs;
    const auto start = std::chrono::steady_clock::now();
    const mindspore::Status predicted = model.Predict(inputs, &outputs);
    const auto stop = std::chrono::steady_clock::now();
    if (predicted != mindspore::kSuccess) {
      throw std::runtime_error("inference failed on " + file.string() + ": " + predicted.ToString());
    }
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
    for (size_t i = 0; i < outputs.size(); ++i) {
      CheckFloat32(outputs[i], "model output");
      const fs::path result = fs::path(options.result_path) / (file.stem().string() + "_" + std::to_string(i) + ".bin");
      WriteFile(result, outputs[i].Data().get(), outputs[i].DataSize());
    }
  }
  ReportLatency(latencies_ms, BatchSize(input));
  std::cout << "results in " << options.result_path << std::endl;
}

}  // namespace
}  // namespace repvgg

int main(int argc, char **argv) {
  const std::string program = argc > 0 ? fs::path(argv[0]).filename().string() : "main";
  repvgg::Options options;
  try {
    options = repvgg::ParseOptions(argc, argv);
  } catch (const repvgg::UsageError &error) {
    std::cerr << "error: " << error.what() << "\n" << repvgg::Usage(program);
    return 2;
  }
  if (options.show_help) {
    std::cout << repvgg::Usage(program);
    return 0;
  }
  try {
    repvgg::Run(options);
  } catch (const std::exception &error) {
    std::cerr << "error: " << error.what() << std::endl;
    return 1;
  }
  return 0;
}
