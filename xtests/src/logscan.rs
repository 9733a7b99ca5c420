//! The guest kernel-log scanner: any line it reports fails the VM run,
//! whatever the guest command returned.
//!
//! It looks only at kernel log lines (those starting with a printk timestamp
//! such as `[    1.234567]`), so output of the guest command that happens to
//! share the serial console, or a test that prints the word "WARNING", cannot
//! trip it. `dmesg` and the console print such timestamps with PRINTK_TIME=y,
//! which `qemu/kernel.config` sets.

/// What a reported line is evidence of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Warning,
    Bug,
    Oops,
    Kasan,
    Ubsan,
    Panic,
    Lockdep,
    Hang,
    Leak,
    RustPanic,
    StackTrace,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// 1-based line number in the scanned text.
    pub line_no: usize,
    pub kind: Kind,
    pub line: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: [{:?}] {}", self.line_no, self.kind, self.line)
    }
}

/// Substrings of a kernel message that mean something went wrong. Matched
/// case-sensitively, in order; the first match names the kind.
const PATTERNS: &[(&str, Kind)] = &[
    ("KASAN:", Kind::Kasan),
    ("UBSAN:", Kind::Ubsan),
    ("Kernel panic", Kind::Panic),
    ("panicked at", Kind::RustPanic),
    // lockdep's reports (they start with "WARNING:" too, but name them)
    ("possible recursive locking", Kind::Lockdep),
    ("circular locking dependency", Kind::Lockdep),
    ("inconsistent lock state", Kind::Lockdep),
    ("irq lock inversion", Kind::Lockdep),
    ("suspicious RCU usage", Kind::Lockdep),
    ("bad unlock balance", Kind::Lockdep),
    ("held when returning to user space", Kind::Lockdep),
    ("lock held at task exit", Kind::Lockdep),
    ("blocked for more than", Kind::Hang),
    ("soft lockup", Kind::Hang),
    ("hard LOCKUP", Kind::Hang),
    ("detected stalls", Kind::Hang),
    ("self-detected stall", Kind::Hang),
    ("Oops", Kind::Oops),
    ("general protection fault", Kind::Oops),
    ("kernel BUG at", Kind::Bug),
    ("BUG:", Kind::Bug),
    ("WARNING:", Kind::Warning),
    ("------------[ cut here ]------------", Kind::Warning),
    ("INFO: ", Kind::Lockdep),
    ("unreferenced object 0x", Kind::Leak),
    ("suspected memory leak", Kind::Leak),
    ("Call Trace:", Kind::StackTrace),
];

/// Kernel messages that contain a pattern above but are known harmless on
/// this platform. Each entry must say why it is benign.
const BENIGN: &[&str] = &[
    // kmemleak's one-line summary after a scan with nothing found reads
    // "kmemleak: 0 new suspected memory leaks": not a leak.
    "kmemleak: 0 new suspected memory leak",
];

/// Return every line of `log` that shows a kernel warning, bug, oops, KASAN
/// or lockdep report, panic, hang or leak.
pub fn scan(log: &str) -> Vec<Finding> {
    log.lines().enumerate().filter_map(|(i, line)| scan_line(i, line)).collect()
}

fn scan_line(i: usize, line: &str) -> Option<Finding> {
    let msg = kernel_message(line)?;
    if BENIGN.iter().any(|b| msg.contains(b)) {
        return None;
    }
    let &(_, kind) = PATTERNS.iter().find(|(p, _)| msg.contains(p))?;
    Some(Finding { line_no: i + 1, kind, line: line.trim_end().to_string() })
}

/// Kernel-log markers around one test of a shared boot (`guest/batch.sh`).
pub const BEGIN_MARKER: &str = "novars-xt: begin ";
pub const END_MARKER: &str = "novars-xt: end ";

/// Findings of a shared boot, per test: `(test name, findings)` for each
/// section between `BEGIN_MARKER name` and `END_MARKER name`, plus the
/// findings outside every section (boot, shutdown), which no single test
/// can be blamed for.
pub fn scan_sections(log: &str) -> (Vec<(String, Vec<Finding>)>, Vec<Finding>) {
    let mut sections: Vec<(String, Vec<Finding>)> = Vec::new();
    let mut outside = Vec::new();
    let mut current: Option<usize> = None;
    for (i, line) in log.lines().enumerate() {
        let msg = kernel_message(line).unwrap_or("");
        if let Some(name) = msg.strip_prefix(BEGIN_MARKER) {
            sections.push((name.trim().to_string(), Vec::new()));
            current = Some(sections.len() - 1);
        } else if msg.starts_with(END_MARKER) {
            current = None;
        } else if let Some(f) = scan_line(i, line) {
            match current {
                Some(c) => sections[c].1.push(f),
                None => outside.push(f),
            }
        }
    }
    (sections, outside)
}

/// The log before the kernel's `Kernel panic - not syncing: ...` line whose
/// message contains `text`, or None if the kernel did not panic so. For a
/// test that must panic: its own panic and what follows (the stack dump,
/// the reboot) are not findings, everything before it is judged as usual.
pub fn before_panic<'a>(log: &'a str, text: &str) -> Option<&'a str> {
    let mut at = 0;
    for line in log.split_inclusive('\n') {
        if kernel_message(line)
            .and_then(|m| m.find("Kernel panic - not syncing").map(|i| &m[i..]))
            .is_some_and(|m| m.contains(text))
        {
            return Some(&log[..at]);
        }
        at += line.len();
    }
    None
}

/// The message part of a kernel log line, or None if `line` is not one.
/// Accepts `[    1.234567] msg` and, with PRINTK_CALLER, `[    1.234567][  T1] msg`;
/// a console may put carriage returns or other control characters before it.
fn kernel_message(line: &str) -> Option<&str> {
    let start = line.find('[')?;
    let rest = &line[start + 1..];
    let close = rest.find(']')?;
    // printk prints "%5lu.%06lu": right-aligned seconds, six-digit fraction.
    let stamp = rest[..close].trim_start();
    let (secs, micros) = stamp.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let noise_only = line[..start].chars().all(|c| c.is_whitespace() || c.is_control());
    if !digits(secs) || !digits(micros) || micros.len() != 6 || !noise_only {
        return None;
    }
    let mut msg = &rest[close + 1..];
    // PRINTK_CALLER: a second bracket group such as "[    T1]" or "[  C0]".
    if let Some(after) = msg.strip_prefix('[') {
        if let Some(end) = after.find(']') {
            let tag = after[..end].trim();
            if tag.len() > 1 && (tag.starts_with('T') || tag.starts_with('C')) && digits(&tag[1..])
            {
                msg = &after[end + 1..];
            }
        }
    }
    Some(msg.trim_start())
}

/// Is `line` a kernel log line (as opposed to other console output)?
pub fn is_kernel_line(line: &str) -> bool {
    kernel_message(line).is_some()
}

/// A readable report of findings (at most `max` lines, then a count).
pub fn report(findings: &[Finding], max: usize) -> String {
    let mut s = String::new();
    for f in findings.iter().take(max) {
        s.push_str(&format!("    {f}\n"));
    }
    if findings.len() > max {
        s.push_str(&format!("    ... and {} more\n", findings.len() - max));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn testdata(name: &str) -> String {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn kinds(log: &str) -> Vec<Kind> {
        scan(log).into_iter().map(|f| f.kind).collect()
    }

    #[test]
    fn clean_boot_logs_have_no_findings() {
        for name in ["clean-boot-normal.log", "clean-boot-debug.log", "clean-module-load.log"] {
            let findings = scan(&testdata(name));
            assert!(findings.is_empty(), "{name}:\n{}", report(&findings, 50));
        }
    }

    #[test]
    fn warning_splat() {
        let k = kinds(&testdata("warning.log"));
        assert!(k.contains(&Kind::Warning), "{k:?}");
        assert!(k.contains(&Kind::StackTrace));
    }

    #[test]
    fn oops() {
        let k = kinds(&testdata("oops.log"));
        assert!(k.contains(&Kind::Oops), "{k:?}");
        assert!(k.contains(&Kind::Bug));
    }

    #[test]
    fn kasan_report() {
        let k = kinds(&testdata("kasan.log"));
        assert_eq!(k.first(), Some(&Kind::Kasan), "{k:?}");
    }

    #[test]
    fn lockdep_report() {
        let k = kinds(&testdata("lockdep.log"));
        assert!(k.contains(&Kind::Lockdep), "{k:?}");
    }

    #[test]
    fn bug_report() {
        let k = kinds(&testdata("bug.log"));
        assert!(k.contains(&Kind::Bug), "{k:?}");
    }

    #[test]
    fn rust_panic() {
        let k = kinds(&testdata("rust-panic.log"));
        assert!(k.contains(&Kind::RustPanic), "{k:?}");
        assert!(k.contains(&Kind::Bug), "{k:?}");
    }

    #[test]
    fn kernel_panic() {
        let k = kinds(&testdata("panic.log"));
        assert!(k.contains(&Kind::Panic), "{k:?}");
    }

    #[test]
    fn expected_panic_cuts_the_log() {
        let log = "[    1.000000] novars-xt: begin t\n[    1.100000] novars: (pmem0): inode 3: bad; panic forced (errors=panic)\n\
                   [    1.200000] Kernel panic - not syncing: novars: panic forced after an error\n\
                   [    1.300000] CPU: 0 PID: 1 Comm: cat\n";
        let before = before_panic(log, "novars: panic forced").unwrap();
        assert!(before.ends_with("(errors=panic)\n"));
        assert!(scan(before).is_empty());
        assert_eq!(kinds(log), vec![Kind::Panic]);
        assert!(before_panic(log, "something else").is_none());
        assert!(before_panic("[    1.000000] novars: panic forced\n", "novars").is_none());
    }

    #[test]
    fn ignores_non_kernel_lines() {
        let log = "WARNING: this is test output\nBUG: not a kernel line\n\
                   Kernel panic in a shell script\n[ 1.5 ] is not a stamp either: BUG:\n";
        assert!(scan(log).is_empty());
    }

    #[test]
    fn command_line_with_panic_option_is_benign() {
        let log = "[    0.000000] Kernel command line: console=ttyS0 panic=-1 virtme.exec=`x`\n";
        assert!(scan(log).is_empty());
    }

    #[test]
    fn understands_caller_prefix_and_console_noise() {
        let log = "\r[   12.000100][    T1] WARNING: CPU: 0 PID: 1 at fs/x.c:1 f+0x1/0x2\n";
        assert_eq!(kinds(log), vec![Kind::Warning]);
        assert_eq!(scan(log)[0].line_no, 1);
    }

    #[test]
    fn sections_pin_findings_on_tests() {
        let log = "[    1.000000] WARNING: CPU: 0 PID: 1 at boot.c:1 x\n\
                   [    2.000000] novars-xt: begin a\n\
                   [    2.100000] fine\n\
                   [    2.200000] novars-xt: end a\n\
                   [    3.000000] novars-xt: begin b\n\
                   [    3.100000] BUG: KASAN: use-after-free in f+0x1/0x2\n\
                   [    3.200000] novars-xt: end b\n\
                   [    4.000000] Kernel panic - not syncing: x\n";
        let (sections, outside) = scan_sections(log);
        let names: Vec<&str> = sections.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(sections[0].1.is_empty());
        assert_eq!(sections[1].1.iter().map(|f| f.kind).collect::<Vec<_>>(), [Kind::Kasan]);
        assert_eq!(
            outside.iter().map(|f| f.kind).collect::<Vec<_>>(),
            [Kind::Warning, Kind::Panic]
        );
        // The markers themselves are never findings, and a plain scan sees all.
        assert_eq!(scan(log).len(), 3);
    }

    #[test]
    fn message_extraction() {
        assert_eq!(kernel_message("[    1.234567] hello"), Some("hello"));
        assert_eq!(kernel_message("[    1.234567][    T1] hi"), Some("hi"));
        assert_eq!(kernel_message("\r\t[    1.200000] x"), Some("x"));
        assert_eq!(kernel_message("hello [    1.200000] x"), None);
        assert_eq!(kernel_message("[1.2] x"), None);
        assert_eq!(kernel_message("[abc] x"), None);
        assert_eq!(kernel_message("no bracket"), None);
    }
}
