#include "tensor/interrupt.hpp"

#include <atomic>

namespace theta {

// Note [Interrupt points]
// theta itself never stops a computation halfway: an embedding does. The Python module releases
// the GIL for the length of a long call, so Python cannot see Ctrl-C until the call returns; it
// installs a hook that briefly retakes the GIL and asks Python whether a signal arrived, throwing
// when one did. The loops that may run for seconds (kernel tiles and blocks, Lanczos and
// Hutchinson iterations, training batches, Jacobian chunks) call check_interrupt() between chunks,
// where every object is in a consistent state and RAII unwinds cleanly. Without a hook the call is
// one relaxed atomic load.
namespace {
std::atomic<InterruptHook> installed_hook{nullptr};
}  // namespace

InterruptHook set_interrupt_hook(InterruptHook hook) { return installed_hook.exchange(hook); }

void check_interrupt() {
  if (InterruptHook hook = installed_hook.load(std::memory_order_relaxed)) hook();
}

}  // namespace theta
