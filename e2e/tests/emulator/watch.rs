//! Watches: resume from a resourceVersion, bookmarks, 410 after history expiry, timeouts, selector transitions.

use super::*;

async fn next_event<S>(stream: &mut S) -> Result<WatchEvent<ConfigMap>>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    match tokio::time::timeout(DEADLINE, stream.try_next()).await {
        Ok(Ok(Some(ev))) => Ok(ev),
        Ok(Ok(None)) => bail!("watch ended"),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => bail!("no watch event within {DEADLINE:?}"),
    }
}

#[tokio::test]
async fn watch_resumes_sends_bookmarks_and_expires() -> Result<()> {
    let emu = Emulator::builder()
        .history_limit(50)
        .bookmark_interval(Duration::from_millis(200))
        .start()
        .await?;
    let client = emu.client().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let a = cms
        .create(&PostParams::default(), &cm("a", json!({"v": "0"})))
        .await?;
    let from = a.resource_version().unwrap();
    for v in ["1", "2"] {
        cms.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": v}})),
        )
        .await?;
    }
    cms.create(&PostParams::default(), &cm("b", json!({})))
        .await?;
    cms.delete("b", &DeleteParams::default()).await?;

    let mut stream = cms
        .watch(&WatchParams::default().disable_bookmarks(), &from)
        .await?
        .boxed();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(match next_event(&mut stream).await? {
            WatchEvent::Added(c) => format!("ADDED {}", c.name_any()),
            WatchEvent::Modified(c) => {
                format!("MODIFIED {} {}", c.name_any(), c.data.unwrap()["v"])
            }
            WatchEvent::Deleted(c) => format!("DELETED {}", c.name_any()),
            other => bail!("unexpected {other:?}"),
        });
    }
    assert_eq!(
        seen,
        ["MODIFIED a 1", "MODIFIED a 2", "ADDED b", "DELETED b"]
    );

    // Bookmarks arrive on a quiet watch and carry the current version.
    let current = emu.resource_version().to_string();
    let mut quiet = cms.watch(&WatchParams::default(), &current).await?.boxed();
    match next_event(&mut quiet).await? {
        WatchEvent::Bookmark(b) => {
            assert!(b.metadata.resource_version.parse::<u64>()? >= current.parse::<u64>()?)
        }
        other => bail!("expected a bookmark, got {other:?}"),
    }

    // After compaction the old version is gone: an ERROR event with a 410 Status.
    emu.compact_history();
    let mut gone = cms.watch(&WatchParams::default(), &from).await?.boxed();
    match next_event(&mut gone).await? {
        WatchEvent::Error(status) => assert_eq!(status.code, 410, "{status:?}"),
        other => bail!("expected 410, got {other:?}"),
    }
    // History pushed out by many writes expires the same way.
    let mid = emu.resource_version().to_string();
    for i in 0..60 {
        cms.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": format!("n{i}")}})),
        )
        .await?;
    }
    let mut gone = cms.watch(&WatchParams::default(), &mid).await?.boxed();
    assert!(matches!(next_event(&mut gone).await?, WatchEvent::Error(s) if s.code == 410));
    Ok(())
}

#[tokio::test]
async fn watch_timeout_and_selector_transitions() -> Result<()> {
    let (emu, client) = start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let rv = emu.resource_version().to_string();
    let mut stream = cms
        .watch(
            &WatchParams::default()
                .labels("app=web")
                .timeout(2)
                .disable_bookmarks(),
            &rv,
        )
        .await?
        .boxed();
    cms.create(&PostParams::default(), &cm("s", json!({})))
        .await?;
    cms.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await?;
    cms.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await?;
    assert!(matches!(next_event(&mut stream).await?, WatchEvent::Added(c) if c.name_any() == "s"));
    assert!(
        matches!(next_event(&mut stream).await?, WatchEvent::Deleted(c) if c.name_any() == "s")
    );
    // timeoutSeconds=2 ends the stream.
    let end = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .context("watch did not time out")?;
    assert!(end.is_none(), "{end:?}");
    Ok(())
}
