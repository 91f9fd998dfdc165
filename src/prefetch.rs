//! The one software-prefetch hint the hot loops share (group numbering, top-N lists, tree
//! histograms): ask for the memory of an element a few iterations ahead of its use.

/// Ask the CPU to bring `slice[index]` into cache: a hint only, nothing happens elsewhere;
/// an index past the end asks for nothing. An element wider than one byte may straddle two
/// cache lines, so its last byte is asked for too.
#[inline(always)]
pub fn prefetch<T>(slice: &[T], index: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = slice.get(index) {
        let p = (p as *const T).cast::<i8>();
        // SAFETY: prefetching reads nothing architecturally; the addresses are in the slice.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(p);
            if size_of::<T>() > 1 {
                _mm_prefetch::<_MM_HINT_T0>(p.add(size_of::<T>() - 1));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slice, index);
}

/// Ask for every cache line of `items`: a table about to be used all over, brought in in
/// order at the memory's full speed rather than a miss at a time.
pub fn prefetch_all<T>(items: &[T]) {
    let step = (64 / size_of::<T>()).max(1);
    for at in (0..items.len()).step_by(step) {
        prefetch(items, at);
    }
}
