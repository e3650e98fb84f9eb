//! Table tests for the input grammars.

use super::*;

#[test]
fn dns_labels() {
    for ok in ["a", "store-0142", "0", &"a".repeat(63)] {
        assert!(dns_label("f", ok).is_ok(), "{ok:?}");
    }
    for bad in [
        "",
        "-a",
        "a-",
        "A",
        "a.b",
        "a b",
        "a\n",
        "é",
        &"a".repeat(64),
        "a\0",
    ] {
        assert!(dns_label("f", bad).is_err(), "{bad:?}");
    }
}

#[test]
fn dns_names() {
    assert!(dns_name("f", "node-1.store-0142.example").is_ok());
    for bad in [
        "",
        "a..b",
        ".a",
        "a.",
        "a_b",
        &format!("{}.a", "a".repeat(253)),
    ] {
        assert!(dns_name("f", bad).is_err(), "{bad:?}");
    }
}

#[test]
fn urls() {
    let https = &["https"];
    assert!(url("f", "https://reg.example:8443/base", https).is_ok());
    assert!(url("f", "https://127.0.0.1:8443", https).is_ok());
    for bad in [
        "http://reg.example",
        "https://reg.example/a b",
        "https://reg.example/\n",
        " https://reg.example",
        "https://user:pw@reg.example",
        "https:///path",
        "reg.example",
        "https://reg.example/'$(id)'",
        "file:///etc/passwd",
    ] {
        // A quote is legal in a URL path; only the scheme/host/credential/whitespace rules bite.
        let r = url("f", bad, https);
        if bad.contains('\'') {
            assert!(r.is_ok(), "{bad:?}");
        } else {
            assert!(r.is_err(), "{bad:?}");
        }
    }
    assert!(url("f", "http://mirror.local/agent", &["https", "http"]).is_ok());
}

#[test]
fn digests() {
    assert!(sha256("f", &"a1".repeat(32)).is_ok());
    assert!(sha256("f", &"A1".repeat(32)).is_ok());
    for bad in [
        "",
        &"a".repeat(63),
        &"a".repeat(65),
        &"g".repeat(64),
        &format!("{} ", "a".repeat(63)),
    ] {
        assert!(sha256("f", bad).is_err(), "{bad:?}");
    }
}

#[test]
fn k3s_flags() {
    assert_eq!(
        k3s_flag("f", "--disable=traefik").unwrap(),
        ("disable", Some("traefik"))
    );
    assert_eq!(
        k3s_flag("f", "--write-kubeconfig-mode=0644").unwrap(),
        ("write-kubeconfig-mode", Some("0644"))
    );
    assert_eq!(
        k3s_flag("f", "--cluster-init").unwrap(),
        ("cluster-init", None)
    );
    assert_eq!(
        k3s_flag("f", "--node-label=a=b c").unwrap(),
        ("node-label", Some("a=b c"))
    );
    for bad in [
        "disable",
        "-d",
        "--",
        "---x",
        "--Disable",
        "--a b",
        "--x=\n",
        "--x\0",
    ] {
        assert!(k3s_flag("f", bad).is_err(), "{bad:?}");
    }
}

#[test]
fn modes_and_owners() {
    assert_eq!(permissions("f", "0644").unwrap(), 0o644);
    assert_eq!(permissions("f", "600").unwrap(), 0o600);
    assert_eq!(permissions("f", "0o1777").unwrap(), 0o1777);
    for bad in ["", "8", "0648", "06444", "rw-r--r--", "0x1a"] {
        assert!(permissions("f", bad).is_err(), "{bad:?}");
    }
    for ok in ["root", "root:root", "ops:adm", "_svc"] {
        assert!(owner("f", ok).is_ok(), "{ok:?}");
    }
    for bad in ["", ":", "root:", "Root", "a:b:c", "a b", "1abc", "$(id)"] {
        assert!(owner("f", bad).is_err(), "{bad:?}");
    }
}

#[test]
fn text_rejects_nul_and_oversize() {
    assert!(text("f", "any $(thing) ' \" \n", 100).is_ok());
    assert!(text("f", "a\0b", 100).is_err());
    assert!(text("f", &"x".repeat(101), 100).is_err());
}
