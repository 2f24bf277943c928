// gstick command-line entry point.
#include <cstdio>

int main() {
  std::printf("gstick %s\n", GS_VERSION);
  return 0;
}
