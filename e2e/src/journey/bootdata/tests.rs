use std::io::Write as _;

use base64::Engine as _;

use super::*;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn cloud_config_encodings() {
    let body = b"line one\nline: \"two\"\n";
    let rows: Vec<(&str, String)> = vec![
        ("", format!("{:?}", std::str::from_utf8(body).unwrap())),
        ("encoding: b64", format!("\"{}\"", b64(body))),
        ("encoding: base64", format!("\"{}\"", b64(body))),
        ("encoding: gz+b64", format!("\"{}\"", b64(&gz(body)))),
        ("encoding: gzip+base64", format!("\"{}\"", b64(&gz(body)))),
    ];
    for (encoding, content) in rows {
        let doc = format!(
            "#cloud-config\nwrite_files:\n  - path: \"/etc/x\"\n    permissions: \"0600\"\n    {encoding}\n    content: {content}\n"
        );
        let got = cloud_config_files(&doc).unwrap_or_else(|e| panic!("{encoding}: {e}"));
        assert_eq!(
            got,
            vec![BootFile {
                path: "/etc/x".into(),
                mode: Some(0o600),
                content: body.to_vec()
            }],
            "{encoding}"
        );
    }
}

#[test]
fn cloud_config_rejects() {
    let rows = [
        ("write_files: []\n", "not #cloud-config"),
        ("#cloud-config\nwrite_files: 3\n", "not a list"),
        (
            "#cloud-config\nwrite_files:\n  - content: x\n",
            "write_files[0]",
        ),
        (
            "#cloud-config\nwrite_files:\n  - path: /a\n    encoding: rot13\n    content: x\n",
            "unknown encoding",
        ),
        (
            "#cloud-config\nwrite_files:\n  - path: /a\n    encoding: b64\n    content: \"!!\"\n",
            "base64",
        ),
        (
            "#cloud-config\nwrite_files:\n  - path: /a\n    permissions: \"rw\"\n    content: x\n",
            "not octal",
        ),
    ];
    for (doc, want) in rows {
        let err = cloud_config_files(doc).expect_err(doc).to_string();
        assert!(err.contains(want), "{doc}: {err}");
    }
    assert_eq!(
        cloud_config_files("#cloud-config\nruncmd: []\n"),
        Ok(vec![])
    );
}

#[test]
fn ignition_sources() {
    let body = b"a b/c%\n";
    let rows: Vec<(String, Option<&str>)> = vec![
        (format!("data:;base64,{}", b64(body)), None),
        (
            format!("data:text/plain;charset=utf-8;base64,{}", b64(body)),
            None,
        ),
        ("data:,a%20b%2Fc%25%0A".to_string(), None),
        (format!("data:;base64,{}", b64(&gz(body))), Some("gzip")),
    ];
    for (source, compression) in rows {
        let doc = serde_json::json!({
            "ignition": {"version": "3.3.0"},
            "storage": {"files": [{"path": "/etc/y", "mode": 420,
                "contents": {"source": source, "compression": compression}}]}
        });
        let got = ignition_files(&doc.to_string()).unwrap_or_else(|e| panic!("{source}: {e}"));
        assert_eq!(
            got,
            vec![BootFile {
                path: "/etc/y".into(),
                mode: Some(0o644),
                content: body.to_vec()
            }],
            "{source}"
        );
    }
}

#[test]
fn ignition_rejects_without_echoing_sources() {
    let rows = [
        (serde_json::json!({"storage": {}}), "no ignition.version"),
        (
            serde_json::json!({"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/a", "contents": {"source": "https://user:sekret@host/x"}}]}}),
            "not a data: URL (https)",
        ),
        (
            serde_json::json!({"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/a", "contents": {"source": "data:,x", "compression": "xz"}}]}}),
            "unknown compression",
        ),
        (
            serde_json::json!({"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": "/a", "contents": {"source": "data:,%zz"}}]}}),
            "bad percent escape",
        ),
    ];
    for (doc, want) in rows {
        let err = ignition_files(&doc.to_string())
            .expect_err(want)
            .to_string();
        assert!(err.contains(want), "{err}");
        assert!(!err.contains("sekret"), "{err}");
    }
    assert_eq!(
        files("yaml", b"x"),
        Err(BootDataError::Format("yaml".into()))
    );
}

#[test]
fn exec_start_words() {
    let unit = "[Service]\nType=simple\nExecStart=/usr/local/bin/siteboot-agent run --config /etc/siteboot/agent.yaml\nRestart=always\n";
    assert_eq!(
        exec_start(unit).unwrap(),
        [
            "/usr/local/bin/siteboot-agent",
            "run",
            "--config",
            "/etc/siteboot/agent.yaml"
        ]
    );
    assert_eq!(exec_start("[Service]\n"), None);
}

#[test]
fn write_tree_stays_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let ok = BootFile {
        path: "/etc/siteboot/agent.yaml".into(),
        mode: Some(0o640),
        content: b"x".to_vec(),
    };
    write_tree(dir.path(), std::slice::from_ref(&ok)).unwrap();
    let written = dir.path().join("etc/siteboot/agent.yaml");
    assert_eq!(std::fs::read(&written).unwrap(), b"x");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&written).unwrap().permissions().mode() & 0o777,
        0o640
    );
    let escape = BootFile {
        path: "/etc/../../x".into(),
        ..ok
    };
    assert!(write_tree(dir.path(), &[escape]).is_err());
}
