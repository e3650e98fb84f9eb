//! The `siteboot-agent` binary's command line: version, one-line config errors naming the
//! field (exit code 2), `render --dir` with labels, and `status`.

use std::process::{Command, Output};

fn agent(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_siteboot-agent"));
    cmd.args(args).env_clear().env("SITEBOOT_LOG", "off");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run siteboot-agent")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_and_help() {
    let v = agent(&["--version"], &[]);
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("siteboot-agent "));
    let h = agent(&["--help"], &[]);
    let text = String::from_utf8_lossy(&h.stdout);
    for word in [
        "run",
        "render",
        "status",
        "--registration-url",
        "--token-file",
    ] {
        assert!(text.contains(word), "help mentions {word}");
    }
}

#[test]
fn bad_config_is_one_line_naming_the_field_with_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("agent.yaml");
    // (config file, environment, field named in the error)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("caFile: /ca.pem\n", &[], "registrationUrl"),
        (
            "registrationUrl: http://x\ncaFile: /ca.pem\n",
            &[],
            "registrationUrl",
        ),
        ("registrationUrl: https://x\n", &[], "caFile"),
        (
            "registrationUrl: https://x\ncaFile: /c\npollIntervalSeconds: 0\n",
            &[],
            "pollIntervalSeconds",
        ),
        (
            "registrationUrl: https://x\ncaFile: /c\ntokenFile: /t\n",
            &[
                ("SITEBOOT_CLAIM_CODE_FILE", "/claim"),
                ("SITEBOOT_TOKEN_FILE", "/t2"),
            ],
            "tokenFile, claimCodeFile",
        ),
        (
            "registrationUrl: https://x\ncaFile: /c\ncaSha256: nope\n",
            &[],
            "caSha256",
        ),
        (
            "registrationUrl: https://x\nbogus: 1\n",
            &[],
            "unknown field `bogus`",
        ),
    ];
    for (yaml, env, field) in cases {
        std::fs::write(&cfg, yaml).unwrap();
        let o = agent(&["run", "--config", cfg.to_str().unwrap()], env);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{yaml}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(
            err.contains("invalid agent config") && err.contains(field),
            "{yaml}: {err}"
        );
    }
    // A flag fixes what the file lacks: the error moves on to the next missing field.
    std::fs::write(&cfg, "caFile: /ca.pem\n").unwrap();
    let o = agent(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--registration-url",
            "https://r",
        ],
        &[],
    );
    assert_ne!(o.status.code(), Some(2), "{}", stderr(&o));
    let missing = agent(&["run", "--config", "/nonexistent/agent.yaml"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("/nonexistent/agent.yaml"));
}

#[test]
fn render_prints_merged_substituted_yaml_and_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir_all(d.join("baseline")).unwrap();
    std::fs::create_dir_all(d.join("clusters/s1")).unwrap();
    std::fs::write(d.join("baseline/cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: n}\ndata: {a: \"${region}\", b: base}\n").unwrap();
    std::fs::write(
        d.join("clusters/s1/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: n}\ndata: {b: site}\n",
    )
    .unwrap();
    let args = [
        "render",
        "--dir",
        d.to_str().unwrap(),
        "--path",
        "baseline/",
        "--path",
        "clusters/s1/",
        "--labels",
        "region=eu-west",
    ];
    let data_dir = d.join("data");
    let env = [("SITEBOOT_DATA_DIR", data_dir.to_str().unwrap())];
    let o = agent(&args, &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let docs: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .split("---\n")
        .filter(|s| !s.trim().is_empty())
        .map(|s| serde_norway::from_str(s).unwrap())
        .collect();
    assert_eq!(docs.len(), 1);
    assert_eq!(
        docs[0]["data"],
        serde_json::json!({"a": "eu-west", "b": "site"})
    );
    let o = agent(&args[..7], &env);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("render baseline/cm.yaml document 1: unknown variable ${region}"),
        "{}",
        stderr(&o)
    );
    let s = agent(&["status"], &env);
    assert_eq!(s.status.code(), Some(1));
    assert!(stderr(&s).contains("no status file"), "{}", stderr(&s));
}
