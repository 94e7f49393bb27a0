#include "options.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <vector>

namespace repvgg {
namespace {

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

// Whole-string integer in [low, high]; std::stol alone would accept "3abc" as 3.
int64_t ParseInteger(const std::string &flag, const std::string &text, int64_t low, int64_t high) {
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception &) {
    used = 0;
  }
  if (text.empty() || used != text.size() || value < low || value > high) {
    throw UsageError("--" + flag + " must be an integer in [" + std::to_string(low) + ", " + std::to_string(high) +
                     "], got '" + text + "'");
  }
  return value;
}

DeviceTarget ParseDeviceTarget(const std::string &text) {
  const std::string lower = Lower(text);
  if (lower == "ascend") {
    return DeviceTarget::kAscend;
  }
  if (lower == "cpu") {
    return DeviceTarget::kCpu;
  }
  throw UsageError("--device_target must be Ascend or CPU, got '" + text + "'");
}

}  // namespace

Options ParseOptions(int argc, const char *const argv[]) {
  std::map<std::string, std::string> values;
  const std::vector<std::string> known = {"mindir_path", "input_path", "result_path",
                                          "device_target", "device_id", "cpu_threads"};
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      options.show_help = true;
      return options;
    }
    if (arg.rfind("--", 0) != 0) {
      throw UsageError("unexpected argument '" + arg + "' (flags look like --name=value)");
    }
    const size_t equals = arg.find('=');
    const std::string name = arg.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      throw UsageError("unknown flag --" + name);
    }
    if (equals != std::string::npos) {
      values[name] = arg.substr(equals + 1);
    } else if (i + 1 < argc) {
      values[name] = argv[++i];
    } else {
      throw UsageError("flag --" + name + " needs a value");
    }
  }
  for (const char *required : {"mindir_path", "input_path", "result_path"}) {
    if (values[required].empty()) {
      throw UsageError(std::string("missing --") + required);
    }
  }
  options.mindir_path = values["mindir_path"];
  options.input_path = values["input_path"];
  options.result_path = values["result_path"];
  if (values.count("device_target") != 0) {
    options.device_target = ParseDeviceTarget(values["device_target"]);
  }
  if (values.count("device_id") != 0) {
    options.device_id =
        static_cast<uint32_t>(ParseInteger("device_id", values["device_id"], 0, std::numeric_limits<int32_t>::max()));
  }
  if (values.count("cpu_threads") != 0) {
    // Lite's thread pool refuses absurd sizes with an opaque status; bound it here with a clear message.
    options.cpu_threads = static_cast<int32_t>(ParseInteger("cpu_threads", values["cpu_threads"], 1, 1024));
  }
  return options;
}

std::string Usage(const std::string &program) {
  return "usage: " + program +
         " --mindir_path=MODEL.mindir --input_path=DIR --result_path=DIR\n"
         "       [--device_target=Ascend|CPU] [--device_id=0] [--cpu_threads=2]\n"
         "Runs every .bin file of --input_path (float32, the model input's exact size) through the model and\n"
         "writes <name>_<output index>.bin (float32) to --result_path; prints the mean latency per file.\n";
}

}  // namespace repvgg
