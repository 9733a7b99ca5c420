//! Damaged traces and images: an error or violations, never a panic.

mod common;

use common::{base, quick, synth};
use crashcheck::crash::Rng;
use crashcheck::synth::Faults;
use crashcheck::trace;

#[test]
fn damaged_traces_and_images_never_panic() {
    let base = base();
    let mut s = synth(&base, Faults::default());
    s.create("/a/x").unwrap();
    s.write("/a/x", 0, b"abc").unwrap();
    let good = s.trace();
    let mut rng = Rng::new(42);
    let mut errors = 0;
    for _ in 0..12 {
        let mut t = good.clone();
        for _ in 0..3 {
            let i = 32 + rng.below(t.len() as u64 - 32) as usize;
            t[i] ^= 1 << rng.below(8);
        }
        match trace::parse(&t) {
            Ok(tr) => {
                if crashcheck::run(base.clone(), &tr, &quick()).is_err() {
                    errors += 1;
                }
            }
            Err(_) => errors += 1,
        }
    }
    assert!(errors > 0, "some damage must be refused");
    // A valid trace over a damaged image: violations, not a crash.
    let tr = trace::parse(&good).unwrap();
    let mut img = base.clone();
    for _ in 0..2000 {
        let i = rng.below(64 * 4096) as usize;
        img[i] = rng.next_u64() as u8;
    }
    let r = crashcheck::run(img, &tr, &quick()).unwrap().report;
    assert!(r.checked > 0);
    let zeros = vec![0u8; base.len()];
    let r = crashcheck::run(zeros, &tr, &quick()).unwrap().report;
    assert!(r.violations > 0, "no superblock: fsck cannot check");
    assert!(r.findings[0].fatal.is_some());
}
