// Command-line options of the inference harness. The MindSpore (Lite) packages ship no gflags, so the
// harness parses its handful of flags itself: --name=value or --name value.
#ifndef REPVGG_INFER_OPTIONS_H_
#define REPVGG_INFER_OPTIONS_H_

#include <cstdint>
#include <stdexcept>
#include <string>

namespace repvgg {

enum class DeviceTarget { kAscend, kCpu };

struct Options {
  std::string mindir_path;
  std::string input_path;
  std::string result_path;
  DeviceTarget device_target = DeviceTarget::kAscend;
  uint32_t device_id = 0;
  int32_t cpu_threads = 2;
  bool show_help = false;
};

// A command line the harness cannot run with: main prints the message and the usage, exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses argv; throws UsageError naming the offending flag or value.
Options ParseOptions(int argc, const char *const argv[]);

std::string Usage(const std::string &program);

}  // namespace repvgg

#endif  // REPVGG_INFER_OPTIONS_H_
