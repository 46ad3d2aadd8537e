//! The module's memory allocator: power-of-two size classes with one free list each, carved from memory
//! the module grows. It replaces std's dlmalloc on wasm32, saving ~8 KB of the ~150 KB budget.
//!
//! Why this is enough here: every allocation the filter makes while handling a request or connection is
//! freed before the callback returns (contexts keep nothing), so at most one request's blocks are live
//! besides the configuration, and a freed block is reused by the next request of the same shape. Without
//! coalescing, memory is bounded by the configuration plus one worst-case request per size class —
//! never growing with traffic. A block is at most twice its request; blocks are 16-byte aligned.

/// The ABI's memory page size.
pub const PAGE: usize = 65536;

/// Largest supported request (a class must fit in `usize`, and no header or config comes near this).
const MAX_SIZE: usize = 1 << 30;

/// Allocator state; addresses are plain integers so the logic is testable on any target.
pub struct Heap {
    /// Head of each class's free list (class `k` holds blocks of `2^k` bytes); a free block's first word
    /// links to the next. `0` ends a list.
    free: [usize; usize::BITS as usize],
    /// The unused rest of the memory grown so far: `[bump, end)`.
    bump: usize,
    end: usize,
}

impl Default for Heap {
    fn default() -> Heap {
        Heap::new()
    }
}

impl Heap {
    pub const fn new() -> Heap {
        Heap { free: [0; usize::BITS as usize], bump: 0, end: 0 }
    }

    /// Size class of a request: the smallest `k` with `2^k >= size`, at least 16 bytes.
    fn class(size: usize) -> usize {
        (usize::BITS - (size.max(16) - 1).leading_zeros()) as usize
    }

    /// A block for `size` bytes aligned to `align`, or `0` when the request cannot be met. `grow(pages)`
    /// adds pages to memory and returns the address where they start (`None` if memory cannot grow).
    ///
    /// # Safety
    /// Addresses handed out by `grow` and previously freed blocks must be writable memory.
    pub unsafe fn alloc(&mut self, size: usize, align: usize, grow: impl FnOnce(usize) -> Option<usize>) -> usize {
        if align > 16 || size > MAX_SIZE {
            return 0;
        }
        let k = Heap::class(size);
        let head = self.free[k];
        if head != 0 {
            // SAFETY: `head` is a freed block of this class, so it holds the next link.
            self.free[k] = unsafe { *(head as *const usize) };
            return head;
        }
        let block = 1 << k;
        if self.end - self.bump < block {
            let pages = block.div_ceil(PAGE);
            let Some(start) = grow(pages) else {
                return 0;
            };
            // Fresh memory continues the current region unless something else grew memory meanwhile.
            if start != self.end {
                self.bump = start;
            }
            self.end = start + pages * PAGE;
        }
        // A 16-aligned start plus power-of-two blocks of at least 16 bytes keeps every block 16-aligned.
        let at = self.bump;
        self.bump += block;
        at
    }

    /// Returns a block to its class's free list.
    ///
    /// # Safety
    /// `ptr` must come from [`Heap::alloc`] with the same `size` and not be freed already.
    pub unsafe fn dealloc(&mut self, ptr: usize, size: usize) {
        let k = Heap::class(size);
        // SAFETY: the block is ours and at least 16 bytes long.
        unsafe { *(ptr as *mut usize) = self.free[k] };
        self.free[k] = ptr;
    }

    /// Whether a block allocated for `old` bytes can hold `new` bytes in place.
    pub fn fits(old: usize, new: usize) -> bool {
        Heap::class(old) == Heap::class(new)
    }
}

/// The global allocator on wasm32 (single-threaded: one VM per Envoy worker thread).
#[cfg(target_arch = "wasm32")]
mod global {
    use std::alloc::{GlobalAlloc, Layout};
    use std::arch::wasm32::memory_grow;
    use std::cell::UnsafeCell;

    use super::{Heap, PAGE};

    struct SizeClasses(UnsafeCell<Heap>);

    // SAFETY: wasm32-unknown-unknown modules run on one thread; there is no concurrent access.
    unsafe impl Sync for SizeClasses {}

    #[global_allocator]
    static ALLOCATOR: SizeClasses = SizeClasses(UnsafeCell::new(Heap::new()));

    unsafe impl GlobalAlloc for SizeClasses {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // Grown pages start where memory ended (old page count × page size).
            let grow = |pages| Some(memory_grow(0, pages)).filter(|&old| old != usize::MAX).map(|old| old * PAGE);
            // SAFETY: single-threaded (see above); grown memory and freed blocks are ours to write.
            unsafe { (*self.0.get()).alloc(layout.size(), layout.align(), grow) as *mut u8 }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` with this layout.
            unsafe { (*self.0.get()).dealloc(ptr as usize, layout.size()) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if Heap::fits(layout.size(), new_size) {
                return ptr;
            }
            // SAFETY: GlobalAlloc's contract; the new layout keeps the alignment.
            unsafe {
                let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A heap over a real buffer: `grow` hands out its pages in order.
    struct Arena {
        memory: Vec<u128>,
        pages: usize,
        heap: Heap,
    }

    impl Arena {
        fn new(max_pages: usize) -> Arena {
            Arena { memory: vec![0; max_pages * PAGE / 16], pages: 0, heap: Heap::new() }
        }
        fn base(&self) -> usize {
            self.memory.as_ptr() as usize
        }
        fn alloc(&mut self, size: usize) -> usize {
            let (base, max, pages) = (self.base(), self.memory.len() * 16 / PAGE, &mut self.pages);
            let grow = |n: usize| {
                (*pages + n <= max).then(|| {
                    *pages += n;
                    base + (*pages - n) * PAGE
                })
            };
            // SAFETY: `grow` hands out pages of `memory`.
            unsafe { self.heap.alloc(size, 8, grow) }
        }
        fn dealloc(&mut self, addr: usize, size: usize) {
            // SAFETY: `addr` came from `alloc(size)`.
            unsafe { self.heap.dealloc(addr, size) }
        }
    }

    #[test]
    fn classes() {
        assert_eq!(Heap::class(0), 4);
        assert_eq!(Heap::class(16), 4);
        assert_eq!(Heap::class(17), 5);
        assert_eq!(Heap::class(PAGE), 16);
        assert_eq!(Heap::class(PAGE + 1), 17);
        assert!(Heap::fits(100, 128) && !Heap::fits(100, 129));
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_reused() {
        let mut arena = Arena::new(64);
        let sizes = [1, 16, 17, 100, 4096, 70_000, 3, 250, 65_536, 31];
        let mut live: Vec<(usize, usize)> = Vec::new();
        for round in 0..3 {
            for &size in &sizes {
                let addr = arena.alloc(size);
                assert_ne!(addr, 0);
                assert_eq!((addr - arena.base()) % 16, 0);
                for &(other, other_size) in &live {
                    let (a, b) = (1usize << Heap::class(size), 1usize << Heap::class(other_size));
                    assert!(addr + a <= other || other + b <= addr, "overlap in round {round}");
                }
                live.push((addr, size));
            }
            let pages_before = arena.pages;
            for (addr, size) in live.drain(..) {
                arena.dealloc(addr, size);
            }
            // The same shapes again come entirely from the free lists: memory stops growing.
            for &size in &sizes {
                let addr = arena.alloc(size);
                live.push((addr, size));
            }
            assert_eq!(arena.pages, pages_before);
            for (addr, size) in live.drain(..) {
                arena.dealloc(addr, size);
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        let mut arena = Arena::new(2);
        assert_eq!(arena.alloc(3 * PAGE), 0);
        let mut heap = Heap::new();
        // SAFETY: both are refused before `grow` is called.
        assert_eq!(unsafe { heap.alloc(8, 32, |_| None) }, 0);
        assert_eq!(unsafe { heap.alloc(MAX_SIZE + 1, 8, |_| None) }, 0);
    }
}
