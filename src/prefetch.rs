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
