//! Software prefetch: start loading a value's cache lines before the stage that reads them, so that the
//! misses of a whole burst overlap (VPP and DPDK prefetch a few packets ahead for the same reason).

/// Prefetches every cache line of `*value` into all cache levels. A hint only: it never faults and has
/// no effect on the program's meaning.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let start = (value as *const T).cast::<i8>();
        for offset in (0..size_of::<T>()).step_by(64) {
            // SAFETY: SSE is part of the x86_64 baseline, and a prefetch of any address (in bounds here)
            // neither faults nor reads memory as far as the program can see.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
