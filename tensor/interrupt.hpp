#pragma once
// Cooperative interruption of long computations (Note [Interrupt points]).

namespace theta {

/// A function that throws when the computation in progress should stop (a Python binding raises
/// KeyboardInterrupt after Ctrl-C, say). It runs on the thread that calls check_interrupt().
using InterruptHook = void (*)();

/// Installs `hook` (nullptr removes it) and returns the previous one. Not thread-safe against
/// concurrent calls of itself: install once, at start-up.
InterruptHook set_interrupt_hook(InterruptHook hook);

/// Calls the installed hook, if any. Long loops call it between chunks of work (a tile, an
/// iteration, a batch), on the thread that started the computation, never from worker threads and
/// never while holding a lock. Whatever the hook throws propagates to the caller.
void check_interrupt();

}  // namespace theta
