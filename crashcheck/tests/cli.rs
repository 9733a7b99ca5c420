//! The `novars-crashcheck` binary: exit statuses, the report, and the
//! reproducer that re-creates one image.

mod common;

use std::process::Command;

use common::{base, synth};
use crashcheck::synth::Faults;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_novars-crashcheck")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn files(faults: Faults) -> (tempfile::TempDir, String, String) {
    let base = base();
    let mut s = synth(&base, faults);
    s.create("/a/new").unwrap();
    s.write("/a/new", 0, b"hello").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("base.img");
    let t = dir.path().join("trace.bin");
    std::fs::write(&b, &base).unwrap();
    std::fs::write(&t, s.trace()).unwrap();
    (dir, b.display().to_string(), t.display().to_string())
}

#[test]
fn clean_trace_exits_0_with_counts() {
    let (_d, b, t) = files(Faults::default());
    let (code, out, err) = run(&["--base", &b, "--trace", &t, "--max-random", "4"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ops 2, fences"), "{out}");
    assert!(out.contains("violations: 0 (0 distinct images)"), "{out}");
    let (code, out, _) = run(&["--base", &b, "--trace", &t, "--max-random", "4", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ops"], 2);
    assert_eq!(v["violations"], 0);
    assert!(v["checked"].as_u64().unwrap() > 10);
    assert_eq!(v["per_op"]["create"]["ops"], 1);
}

#[test]
fn violation_exits_1_and_its_reproducer_recreates_the_image() {
    let (d, b, t) = files(Faults { tail_before_entry: true, ..Faults::default() });
    let (code, out, _) = run(&["--base", &b, "--trace", &t, "--max-random", "4", "--json"]);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["violations"].as_u64().unwrap() > 0);
    let f = &v["findings"][0];
    assert_eq!(f["violation"], true);
    assert!(f["fsck"][0].as_str().unwrap().starts_with("LOG_ENTRY"), "{f}");
    let repro = f["reproduce"].as_str().unwrap();
    assert!(repro.contains("--only") && repro.contains("--dump"), "{repro}");
    let id = f["image"].as_u64().unwrap().to_string();
    let dump = d.path().join("crash.img");
    let (code, out, err) = run(&[
        "--base",
        &b,
        "--trace",
        &t,
        "--max-random",
        "4",
        "--only",
        &id,
        "--dump",
        dump.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(&format!("VIOLATION image {id}")), "{out}");
    // The dumped image is the crash image itself: fsck -n finds the same.
    let img = std::fs::read(&dump).unwrap();
    let o = novars_fsck::check(
        &img,
        &novars_fsck::Options::new(novars_fsck::Mode::ReadOnly),
        &mut novars_fsck::Quiet,
    );
    assert_ne!(o.exit_code, 0);
    assert!(o.problems.iter().any(|p| p.code.name().starts_with("LOG_ENTRY")));
}

#[test]
fn bad_inputs_exit_8_usage_16() {
    let (d, b, t) = files(Faults::default());
    let junk = d.path().join("junk.bin");
    std::fs::write(&junk, b"not a trace at all, no").unwrap();
    let (code, _, err) = run(&["--base", &b, "--trace", junk.to_str().unwrap()]);
    assert_eq!(code, 8);
    assert!(err.contains("not a novars trace"), "{err}");
    // A trace whose stores lie past a smaller device.
    let small = d.path().join("small.img");
    std::fs::write(&small, vec![0u8; 8192]).unwrap();
    let (code, _, err) = run(&["--base", small.to_str().unwrap(), "--trace", &t]);
    assert_eq!(code, 8);
    assert!(err.contains("outside the device"), "{err}");
    let (code, _, _) = run(&["--base", &b]);
    assert_eq!(code, 16);
    let (code, _, _) = run(&["--base", &b, "--trace", &t, "--dump", "x.img"]);
    assert_eq!(code, 16, "--dump needs --only");
    let (code, _, err) = run(&["--base", &b, "--trace", &t, "--only", "999999"]);
    assert_eq!(code, 8);
    assert!(err.contains("no image 999999"), "{err}");
}
