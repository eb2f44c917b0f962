# Cross-building for aarch64 Linux on an x86-64 Debian host (tools/test.sh --aarch64): Debian's
# g++-aarch64-linux-gnu, the arm64 packages of the dependencies installed beside the host's
# (multiarch: /usr/lib/aarch64-linux-gnu, headers shared under /usr/include), and qemu-aarch64
# to run what was built (ctest, the tests' discovery).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# The programs run on the arm64 loader and libc of Debian's libc6:arm64 (/lib/ld-linux-aarch64.so.1,
# beside the libraries they link), never on the cross compiler's copy under /usr/aarch64-linux-gnu
# (qemu-aarch64 -L): that one's loader is another glibc build than the libc found beside libtbb,
# and the mismatched pair hangs the first pthread_create.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
# Programs (cmake, python) from the host; libraries, headers and packages for the target, found
# under / through CMAKE_LIBRARY_ARCHITECTURE.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
