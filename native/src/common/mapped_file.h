// Read-only memory map of a whole file (weights are never copied into JS or C++ heaps).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace quip {

class MappedFile {
 public:
  // Throws std::runtime_error naming the path and the OS error when the file cannot be mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
#ifdef _WIN32
  void* file_ = nullptr;
  void* mapping_ = nullptr;
#endif
};

}  // namespace quip
