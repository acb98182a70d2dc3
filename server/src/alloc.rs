//! The process allocator of the `strata` binary: the system allocator, except that very large
//! allocations (>= 256 MiB) are anonymous `mmap(MAP_NORESERVE)` mappings.
//!
//! Why: the Kafka codec reserves `Vec` capacity for an array from the element count in the
//! frame before decoding any element, so a 20-byte request claiming two billion elements asks for
//! hundreds of GiB. With the system allocator that allocation fails and the process aborts: one
//! hostile client could stop the broker. A `MAP_NORESERVE` mapping of that size succeeds
//! (address space, no memory), decoding then fails on the missing bytes, and the mapping is
//! released: the client gets its connection closed and nobody else notices. Memory that is really
//! written is bounded by the frame size (`socket.request.max.bytes`) times the codec's expansion.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large are mapped with `MAP_NORESERVE`.
pub const LARGE_ALLOCATION_BYTES: usize = 256 << 20;

/// See the module docs.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReserveLarge;

fn is_large(layout: &Layout) -> bool {
    layout.size() >= LARGE_ALLOCATION_BYTES && layout.align() <= 4096
}

// SAFETY: small allocations are delegated to `System` unchanged. Large ones come from `mmap`,
// which returns page-aligned (hence `layout.align() <= 4096`-aligned), zero-filled memory of at
// least `layout.size()` bytes, and are released with `munmap` of the same size; the size is
// carried by the `Layout` the caller must pass back to `dealloc`/`realloc`, so each pointer is
// always released by the path that created it.
unsafe impl GlobalAlloc for NoReserveLarge {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_large(&layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: an anonymous private mapping has no preconditions.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            p.cast()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !is_large(&layout) {
            // SAFETY: `ptr` came from `System.alloc` with this layout.
            unsafe { System.dealloc(ptr, layout) };
            return;
        }
        // SAFETY: `ptr` came from `mmap` of `layout.size()` bytes.
        unsafe {
            libc::munmap(ptr.cast(), layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_large(&layout) && !is_large(&new_layout) {
            // SAFETY: both old and new live in `System`.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: allocate, copy the common prefix, free the old block by its own path.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}
