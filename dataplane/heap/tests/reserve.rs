//! A real reservation, in a binary whose global allocator is esprit_heap::Heap (one test:
//! the arena is process-wide).

#[global_allocator]
static HEAP: esprit_heap::Heap = esprit_heap::Heap;

use esprit_heap::{for_sas, reserve, Pages};

fn meminfo(key: &str) -> usize {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    m.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// SA-sized, 64-byte-aligned, as the SA tables hold them.
#[repr(align(64))]
struct Sa([u8; 1600]);

#[test]
fn sas_come_from_the_arena_until_it_is_full() {
    assert!(esprit_heap::in_use());
    let r = reserve(64 << 20).expect("reserve 64 MiB");
    assert!(r.bytes >= 64 << 20, "{r}");
    if let Pages::Hugetlb(size) = r.pages {
        assert_eq!(size, 2 << 20, "{r}");
        assert!(meminfo("HugePages_Total") > 0, "hugetlbfs pages reported, but the host has none: {r}");
    }
    assert_eq!(esprit_heap::arena_used(), 0);
    let sas: Vec<Box<Sa>> = for_sas(|| (0..10_000).map(|i| Box::new(Sa([i as u8; 1600]))).collect());
    // The Vec of boxes is in the arena too.
    assert_eq!(esprit_heap::arena_used(), 10_000 * 1600 + 10_000 * 8);
    let inside = sas.iter().filter(|b| r.contains(&***b)).count();
    assert_eq!(inside, sas.len(), "{inside} of {} SAs in the arena ({r})", sas.len());
    // Growing inside the scope stays in the arena; outside it, nothing goes there.
    let grown = for_sas(|| {
        let mut v = Vec::with_capacity(8);
        v.extend_from_slice(&[7u8; 8]);
        v.resize(100_000, 9);
        v
    });
    assert!(r.contains(grown.as_ptr()) && grown[..8] == [7; 8] && grown[99_999] == 9);
    let other: Vec<Box<Sa>> = (0..100).map(|_| Box::new(Sa([0; 1600]))).collect();
    assert!(other.iter().all(|b| !r.contains(&**b)));
    // Past the arena's size, SAs still come (from the ordinary heap).
    let more: Vec<Box<Sa>> = for_sas(|| (0..50_000).map(|i| Box::new(Sa([i as u8; 1600]))).collect());
    let inside = more.iter().filter(|b| r.contains(&***b)).count();
    assert!(inside > 0 && inside < more.len(), "{inside} of {} in a 64 MiB arena", more.len());
    assert!(sas.iter().enumerate().all(|(i, b)| b.0[1599] == i as u8));
    assert!(more.iter().enumerate().all(|(i, b)| b.0[0] == i as u8));
    // Freed SAs go back to the arena.
    let before = esprit_heap::arena_used();
    drop(sas);
    assert_eq!(esprit_heap::arena_used(), before - 10_000 * 1600 - 10_000 * 8);
    let again: Vec<Box<Sa>> = for_sas(|| (0..1000).map(|_| Box::new(Sa([1; 1600]))).collect());
    assert!(again.iter().all(|b| r.contains(&**b)));
    assert_eq!(reserve(1 << 20), Err(esprit_heap::ReserveError::AlreadyReserved));
}
