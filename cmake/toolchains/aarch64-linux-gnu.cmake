# Cross-compiles kvforge for 64-bit Arm Linux with Debian's cross toolchain
# (g++-aarch64-linux-gnu) against the arm64 packages of the dependencies
# (multiarch), and runs the tests under qemu-user: scripts/test-arm64.sh.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# The arm64 packages' own loader and libc (libc6:arm64): the cross package's
# loader in /usr/aarch64-linux-gnu is another glibc build, and beside
# libc6:arm64's libc every thread creation hung.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64;-L;/)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
