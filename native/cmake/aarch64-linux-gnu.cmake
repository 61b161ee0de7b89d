# Cross build for arm64 Linux with Debian's GNU toolchain (package g++-aarch64-linux-gnu); the test
# programs run under user-mode QEMU (package qemu-user):
#   cmake -S native -B build/native-arm64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=$PWD/native/cmake/aarch64-linux-gnu.cmake
#   cmake --build build/native-arm64 -j 1 && ctest --test-dir build/native-arm64
# (scripts/native-arm64.mjs does both). No -march/-mcpu: the *_neon.cc kernels use baseline ARMv8-A
# AArch64 only (Advanced SIMD and its float16 conversions are mandatory there).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)

# ctest (and anything else honouring it) runs the arm64 programs through QEMU with the arm64 sysroot.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
