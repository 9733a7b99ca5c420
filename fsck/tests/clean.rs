//! Images as mkfs (and a clean unmount) leave them check clean.

mod common;

use common::*;
use novars_fsck::{check, Mode, Options, Quiet};

fn assert_clean(img: &[u8]) {
    let out = check(img, &Options::new(Mode::ReadOnly), &mut Quiet);
    let lines: Vec<String> = out.problems.iter().map(|p| p.to_string()).collect();
    assert!(out.problems.is_empty(), "problems on a clean image:\n{}", lines.join("\n"));
    assert_eq!(out.exit_code, 0);
    assert!(out.writes.is_empty());
}

#[test]
fn generated_tree_checks_clean() {
    let img = base_image();
    assert_clean(&img);
    let f = to_file(&img);
    let (code, out) = fsck(f.path(), &["-fn"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = fsck(f.path(), &["-n"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("clean,"), "{out}");
    // -y on a clean image changes nothing.
    let (code, out) = fsck(f.path(), &["-fy"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(std::fs::read(f.path()).unwrap(), img);
}
