#pragma once
// PoolAllocator: recycles the small fixed-size objects every op creates and destroys (a tensor's
// Storage header, autograd's VarImpl and Node) through per-thread free lists.
//
// Note [Block pool]
// A training step of a small network makes and frees dozens of these objects, in bursts: the
// forward pass allocates them, the backward pass and the next step free them. The general-purpose
// allocator keeps only a handful of blocks per size in its fast per-thread cache, so most of these
// frees fall through to its slow path. Here each thread keeps up to kMaxCachedBlocks
// freed blocks per 16-byte size class and hands them out again. Blocks come from ::operator new,
// so a block freed by another thread, or after the thread's cache is gone, simply goes back to
// ::operator delete. Only for std::allocate_shared and single objects; arrays go to std::allocator.

#include <cstddef>
#include <memory>

namespace theta {

namespace detail {
/// Largest block the pool recycles; larger requests go straight to ::operator new.
inline constexpr std::size_t kMaxPooledBytes = 1024;
void* pool_allocate(std::size_t bytes);
void pool_deallocate(void* block, std::size_t bytes) noexcept;
}  // namespace detail

template <class T> struct PoolAllocator {
  using value_type = T;

  PoolAllocator() = default;
  template <class U> PoolAllocator(const PoolAllocator<U>&) noexcept {}  // NOLINT: rebinding

  T* allocate(std::size_t n) {
    if (n != 1 || alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__) return std::allocator<T>().allocate(n);
    return static_cast<T*>(detail::pool_allocate(sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n != 1 || alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__) return std::allocator<T>().deallocate(p, n);
    detail::pool_deallocate(p, sizeof(T));
  }

  friend bool operator==(const PoolAllocator&, const PoolAllocator&) { return true; }
};

/// std::make_shared through the block pool.
template <class T, class... Args> std::shared_ptr<T> make_pooled(Args&&... args) {
  return std::allocate_shared<T>(PoolAllocator<T>(), std::forward<Args>(args)...);
}

}  // namespace theta
