// bench/support/alloc_count.cpp: a counting malloc shim for benchmarks (LD_PRELOAD), so that
// allocations per request can be compared between programs that share no code (the gateway,
// nginx, HAProxy). Build: g++ -O2 -shared -fPIC -o alloc_count.so alloc_count.cpp -pthread
//
//     ALLOC_COUNT_DIR=/tmp/x LD_PRELOAD=./alloc_count.so program ...
//
// Every process (forked children too) writes "<allocations> <frees>" to ALLOC_COUNT_DIR/<pid>
// every 100 ms; a benchmark reads the files before and after a fixed number of requests and
// divides the difference. Counted: malloc, calloc, realloc (as one allocation), posix_memalign,
// aligned_alloc, memalign (operator new goes through malloc in libstdc++). The calls go on to
// glibc's own (__libc_*); nothing else changes.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cerrno>

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}

namespace {

std::atomic<unsigned long long> allocations{0}, frees{0};

void* writer(void*) {
  const char* dir = std::getenv("ALLOC_COUNT_DIR");
  if (dir == nullptr) return nullptr;
  char path[512], tmp[520];
  std::snprintf(path, sizeof path, "%s/%d", dir, static_cast<int>(getpid()));
  std::snprintf(tmp, sizeof tmp, "%s.tmp", path);
  for (;;) {
    if (FILE* f = std::fopen(tmp, "w")) {
      std::fprintf(f, "%llu %llu\n", allocations.load(std::memory_order_relaxed), frees.load(std::memory_order_relaxed));
      std::fclose(f);
      std::rename(tmp, path);
    }
    usleep(100 * 1000);
  }
}

void start_writer() {
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_create(&t, &a, writer, nullptr);
  pthread_attr_destroy(&a);
}

__attribute__((constructor)) void init() {
  start_writer();
  pthread_atfork(nullptr, nullptr, start_writer);  // a forked worker writes its own file
}

}  // namespace

extern "C" {

void* malloc(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t s) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(n, s);
}
void* realloc(void* p, std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
void free(void* p) {
  if (p != nullptr) frees.fetch_add(1, std::memory_order_relaxed);
  __libc_free(p);
}
void* memalign(std::size_t a, std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(a, n);
}
void* aligned_alloc(std::size_t a, std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, std::size_t a, std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = __libc_memalign(a, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

}  // extern "C"
