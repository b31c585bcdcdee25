//! The hot path does not allocate per event: batch buffers are reused.

// A counting allocator is the one place that needs unsafe: it forwards to
// the system allocator unchanged.
#![allow(unsafe_code)]

use sluice::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_for(events: u64, policy: FlushPolicy) -> u64 {
    let pipeline = Pipeline::new();
    pipeline
        .source(IterSource::new(0..events).with_event_time(|i| *i as i64))
        .map(|i| i * 3)
        .filter(|i| i % 2 == 0)
        .batch(policy)
        .map(|i| i as f64)
        .aggregate(Mean)
        .for_each(|mean| assert!(mean.is_some()));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    pipeline.run().unwrap();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn allocations_do_not_grow_with_the_number_of_events() {
    // Forward: each batch is handed on whole (its buffers swapped with the
    // edge's, not copied).
    for policy in [
        FlushPolicy::Count(256),
        FlushPolicy::EachEvent,
        FlushPolicy::Forward,
    ] {
        let small = allocations_for(10_000, policy);
        let large = allocations_for(1_000_000, policy);
        // Setup (threads, channels, first buffers) costs the same for both;
        // a per-event allocation would add ~a million.
        assert!(
            large < small + 1_000,
            "{policy:?}: {small} allocations for 10k events, {large} for 1M"
        );
    }
}
