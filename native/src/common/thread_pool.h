// A small thread pool of our own (std::thread; no OpenMP, so every platform builds the same way).
// One process-wide pool; `set_threads(n)` resizes it. `parallel_for` splits [0, n) into chunks that
// workers take dynamically; the calling thread works too, so threads = 1 runs inline.
#pragma once
#include <cstddef>
#include <functional>

namespace quip {

// Number of threads parallel_for uses (including the caller). Default: hardware concurrency.
void set_threads(int n);
int num_threads();

// Calls fn(begin, end) over disjoint ranges covering [0, n), each at most `grain` long (grain >= 1).
// Blocks until all ranges are done. Exceptions thrown by fn are rethrown on the calling thread.
// Nested calls from inside fn run inline on that thread.
void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

}  // namespace quip
