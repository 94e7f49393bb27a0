#include "bin_files.h"

#include <algorithm>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>

namespace fs = std::filesystem;

namespace repvgg {

std::vector<fs::path> ListBinFiles(const fs::path &folder) {
  std::error_code error;
  if (!fs::is_directory(folder, error)) {
    throw std::runtime_error("input folder " + folder.string() + " does not exist or is not a folder");
  }
  std::vector<fs::path> files;
  for (const auto &entry : fs::directory_iterator(folder)) {
    if (entry.is_regular_file() && entry.path().extension() == ".bin") {
      files.push_back(entry.path());
    }
  }
  if (files.empty()) {
    throw std::runtime_error("no .bin files in " + folder.string() + " (write them with preprocess.py)");
  }
  // directory_iterator order is unspecified; sorted names make runs and result logs reproducible.
  std::sort(files.begin(), files.end());
  return files;
}

namespace {

uintmax_t FileSize(const fs::path &file) {
  std::error_code error;
  const uintmax_t size = fs::file_size(file, error);
  if (error) {
    throw std::runtime_error("cannot read " + file.string() + ": " + error.message());
  }
  return size;
}

std::string SizeMismatch(const fs::path &file, uintmax_t actual, size_t expected) {
  return file.string() + " has " + std::to_string(actual) + " bytes but the model input takes " +
         std::to_string(expected) + " (float32 of the input shape above): was it preprocessed for another image "
         "size or batch size?";
}

}  // namespace

void CheckFileSizes(const std::vector<fs::path> &files, size_t size) {
  size_t wrong = 0;
  std::string first;
  for (const fs::path &file : files) {
    const uintmax_t actual = FileSize(file);
    if (actual != size) {
      first = wrong == 0 ? SizeMismatch(file, actual, size) : first;
      ++wrong;
    }
  }
  if (wrong > 0) {
    throw std::runtime_error(first + (wrong > 1 ? " (and " + std::to_string(wrong - 1) + " more files)" : ""));
  }
}

void ReadExactly(const fs::path &file, void *buffer, size_t size) {
  const uintmax_t actual = FileSize(file);
  if (actual != size) {
    throw std::runtime_error(SizeMismatch(file, actual, size));
  }
  std::ifstream stream(file, std::ios::binary);
  if (!stream.read(static_cast<char *>(buffer), static_cast<std::streamsize>(size))) {
    throw std::runtime_error("cannot read " + file.string());
  }
}

void WriteFile(const fs::path &file, const void *data, size_t size) {
  std::ofstream stream(file, std::ios::binary | std::ios::trunc);
  if (!stream.write(static_cast<const char *>(data), static_cast<std::streamsize>(size)) || !stream.flush()) {
    throw std::runtime_error("cannot write " + file.string());
  }
}

void EnsureFolder(const fs::path &folder) {
  std::error_code error;
  fs::create_directories(folder, error);
  if (error || !fs::is_directory(folder)) {
    throw std::runtime_error("cannot create result folder " + folder.string() +
                             (error ? ": " + error.message() : ": a file of that name exists"));
  }
}

}  // namespace repvgg
