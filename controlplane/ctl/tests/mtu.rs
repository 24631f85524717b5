//! `espritctl mtu` against the figures of seed 004 (../shared/REFERENCES.md).
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn mtu(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_espritctl")).arg("mtu").args(args).output().unwrap();
    (o.status.success(), String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap())
}

fn quiet(proposal: &str, outer: &str) -> String {
    let (ok, out, err) = mtu(&["--proposal", proposal, "--encap", "udp", "--outer-mtu", outer, "-q"]);
    assert!(ok, "{err}");
    out.trim().to_string()
}

#[test]
fn seed_004_worked_numbers() {
    assert_eq!(quiet("aes128-sha1", "1500"), "1422");
    assert_eq!(quiet("3des-md5", "1500"), "1438");
    assert_eq!(quiet("3des-md5", "1300"), "1238");
    assert_eq!(quiet("3des-md5", "1000"), "942");
    assert_eq!(quiet("aes128gcm16", "1500"), "1438");
}

#[test]
fn breakdown_adds_up() {
    let (ok, out, _) = mtu(&["--proposal", "aes128-sha1", "--encap", "udp", "--outer-mtu", "1500"]);
    assert!(ok);
    assert!(out.contains("largest inner packet: 1422"), "{out}");
    let nums: usize = out
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.parse::<usize>().ok()))
        .sum();
    assert_eq!(nums + 1422, 1500, "{out}");
    let (ok, out, _) = mtu(&["--proposal", "aes128gcm16", "--encap", "none", "--outer-mtu", "1500", "--ipv6"]);
    assert!(ok && out.contains("largest inner packet: 1426"), "{out}");
}

#[test]
fn clear_errors() {
    let (ok, _, err) = mtu(&["--proposal", "rot13", "--outer-mtu", "1500"]);
    assert!(!ok && err.contains("unknown ESP proposal 'rot13'") && err.contains("aes128gcm16"), "{err}");
    let (ok, _, err) = mtu(&["--proposal", "aes128gcm16", "--outer-mtu", "40"]);
    assert!(!ok && err.contains("cannot carry"), "{err}");
}
