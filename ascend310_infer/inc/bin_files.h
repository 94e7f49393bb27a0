// The harness's file formats: inputs are raw little-endian float32 tensors in <name>.bin files (written by
// preprocess.py), results are raw float32 tensors in <name>_<output index>.bin files (read by postprocess.py).
#ifndef REPVGG_INFER_BIN_FILES_H_
#define REPVGG_INFER_BIN_FILES_H_

#include <cstddef>
#include <filesystem>
#include <vector>

namespace repvgg {

// Every regular *.bin file directly inside `folder`, sorted by name; throws std::runtime_error when the
// folder is missing or holds none.
std::vector<std::filesystem::path> ListBinFiles(const std::filesystem::path &folder);

// Throws, naming the first offending file and how many there are, unless every file has `size` bytes.
// Run before any inference, so that a wrong input set fails at once instead of after a partial run.
void CheckFileSizes(const std::vector<std::filesystem::path> &files, size_t size);

// Reads `file`, which must hold exactly `size` bytes, into `buffer`.
void ReadExactly(const std::filesystem::path &file, void *buffer, size_t size);

void WriteFile(const std::filesystem::path &file, const void *data, size_t size);

// Creates `folder` (and its parents) when missing; throws when it cannot, or when it is not a folder.
void EnsureFolder(const std::filesystem::path &folder);

}  // namespace repvgg

#endif  // REPVGG_INFER_BIN_FILES_H_
