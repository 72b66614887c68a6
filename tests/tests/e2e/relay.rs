//! The relay, through the real `nitrosync-parent` binary, with the test acting as the enclave.

use crate::support::*;
use nitrosync_shared::tunnel::{ConnectReply, RefusalReason};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &[u8] = b"DATABASE_PASSWORD=correct-horse-battery-staple-7f3a9c";

#[tokio::test]
async fn allowed_tls_tunnel_works_and_relay_carries_only_ciphertext() {
    let pki = test_pki();
    let (port, upstream_raw) = tls_echo_server(pki.server.clone()).await;
    let relay = RelayUnderTest::start(&["--allow", &format!("localhost:{port}")]).await;

    let (reply, stream) = relay.open("localhost", port).await;
    assert_eq!(reply, ConnectReply::Connected);
    // Record every byte that crosses the enclave side of the relay.
    let enclave_raw = Arc::new(Mutex::new(Vec::new()));
    let recorded = Recording {
        inner: stream,
        log: enclave_raw.clone(),
    };
    let connector = tokio_rustls::TlsConnector::from(client_config(&pki.ca_der));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(name, recorded)
        .await
        .expect("TLS handshake through the relay");
    tls.write_all(SECRET).await.unwrap();
    tls.flush().await.unwrap();
    let mut back = vec![0u8; SECRET.len()];
    tls.read_exact(&mut back).await.unwrap();
    assert_eq!(back, SECRET, "the plaintext round-tripped inside TLS");
    tls.shutdown().await.unwrap();
    drop(tls);

    let enclave_side = enclave_raw.lock().unwrap().clone();
    let upstream_side = upstream_raw.lock().unwrap().clone();
    assert!(enclave_side.len() > SECRET.len() && upstream_side.len() > SECRET.len());
    assert!(
        !contains(&enclave_side, SECRET),
        "secret visible on the enclave side of the relay"
    );
    assert!(
        !contains(&upstream_side, SECRET),
        "secret visible on the upstream side of the relay"
    );
    // The recording is real: a part of the TLS handshake (the SNI) is visible in clear.
    assert!(contains(&enclave_side, b"localhost"));

    // Every byte the TLS server read or wrote went through the relay's counters (the last
    // close_notify may still be in flight, so wait for the counts to settle).
    let total = u64::try_from(upstream_side.len()).unwrap();
    let stats = nitrosync_tests::wait_for(
        "relay byte counters",
        std::time::Duration::from_secs(5),
        || async {
            let stats = relay.stats().await;
            let carried = stats["bytes_to_upstream"].as_u64().unwrap()
                + stats["bytes_to_enclave"].as_u64().unwrap();
            (carried >= total).then_some(stats)
        },
    )
    .await
    .unwrap();
    assert_eq!(stats["connected"], 1);
}

#[tokio::test]
async fn disallowed_hosts_are_refused_with_a_reason_and_counted() {
    let relay = RelayUnderTest::start(&["--region", "us-east-1"]).await;
    for (host, port) in [
        ("evil.example.com", 443),
        ("sts.us-west-2.amazonaws.com", 443),
        ("sts.us-east-1.amazonaws.com", 80),
        ("127.0.0.1", 22),
    ] {
        let (reply, _) = relay.open(host, port).await;
        match reply {
            ConnectReply::Refused { reason, detail } => {
                assert_eq!(reason, RefusalReason::NotAllowed, "{host}:{port}");
                assert!(
                    detail.contains(host) && detail.contains("allowlist"),
                    "{detail}"
                );
            }
            other => panic!("{host}:{port} was not refused: {other:?}"),
        }
    }
    let stats = relay.stats().await;
    assert_eq!(stats["refused"]["not_allowed"], 4);
    assert_eq!(stats["connected"], 0);
    let log = std::fs::read_to_string(&relay.parent.log).unwrap();
    assert!(
        log.contains("evil.example.com") && log.contains("relay refused"),
        "refusals are logged with the host:\n{log}"
    );
}

#[tokio::test]
async fn malformed_prefaces_are_refused_without_harm() {
    let relay = RelayUnderTest::start(&["--region", "us-east-1"]).await;
    // An oversized length prefix: refused from the prefix alone.
    let mut s = nitrosync_transport::connect(&relay.endpoint())
        .await
        .unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let reply = nitrosync_transport::read_one_frame::<_, ConnectReply>(&mut s)
        .await
        .unwrap();
    assert!(
        matches!(reply, Some(ConnectReply::Refused { reason: RefusalReason::BadPreface, ref detail }) if detail.contains("exceeds")),
        "{reply:?}"
    );
    // Garbage CBOR in a well-framed body.
    let mut s = nitrosync_transport::connect(&relay.endpoint())
        .await
        .unwrap();
    s.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
    let reply = nitrosync_transport::read_one_frame::<_, ConnectReply>(&mut s)
        .await
        .unwrap();
    assert!(
        matches!(
            reply,
            Some(ConnectReply::Refused {
                reason: RefusalReason::BadPreface,
                ..
            })
        ),
        "{reply:?}"
    );
    // A truncated frame, then EOF.
    let mut s = nitrosync_transport::connect(&relay.endpoint())
        .await
        .unwrap();
    s.write_all(&[0, 0, 0, 9, 1]).await.unwrap();
    s.shutdown().await.unwrap();
    let reply = nitrosync_transport::read_one_frame::<_, ConnectReply>(&mut s)
        .await
        .unwrap();
    assert!(
        matches!(reply, Some(ConnectReply::Refused { reason: RefusalReason::BadPreface, ref detail }) if detail.contains("ended inside a frame")),
        "{reply:?}"
    );
    // A host name that cannot be one.
    let (reply, _) = relay.open("bad host/../x", 443).await;
    assert!(
        matches!(
            reply,
            ConnectReply::Refused {
                reason: RefusalReason::BadPreface,
                ..
            }
        ),
        "{reply:?}"
    );

    let stats = relay.stats().await;
    assert_eq!(stats["refused"]["bad_preface"], 4);
    // The daemon is still serving.
    let (reply, _) = relay.open("evil.example.com", 443).await;
    assert!(matches!(
        reply,
        ConnectReply::Refused {
            reason: RefusalReason::NotAllowed,
            ..
        }
    ));
}

#[tokio::test]
async fn half_close_is_passed_through() {
    let port = echo_after_eof_server().await;
    let relay = RelayUnderTest::start(&["--allow", &format!("127.0.0.1:{port}")]).await;
    let (reply, mut s) = relay.open("127.0.0.1", port).await;
    assert_eq!(reply, ConnectReply::Connected);
    let payload: Vec<u8> = (0..300_000u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    s.write_all(&payload).await.unwrap();
    // The server answers only after it sees EOF, which it gets only if the relay passes our
    // write shutdown on while keeping the other direction open.
    s.shutdown().await.unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).await.unwrap();
    assert_eq!(back.len(), payload.len());
    assert!(back == payload);
}

#[tokio::test]
async fn a_thousand_concurrent_tunnels_all_complete() {
    const N: usize = 1000;
    let port = echo_after_eof_server().await;
    let relay = RelayUnderTest::start(&["--allow", &format!("127.0.0.1:{port}")]).await;
    let endpoint = relay.endpoint();
    // Open every tunnel first, so that all of them are in flight at once.
    let mut streams = Vec::with_capacity(N);
    for _ in 0..N {
        let mut s = nitrosync_transport::connect(&endpoint).await.unwrap();
        nitrosync_transport::write_frame(
            &mut s,
            &nitrosync_shared::tunnel::Connect {
                host: "127.0.0.1".into(),
                port,
            },
        )
        .await
        .unwrap();
        streams.push(s);
    }
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            tokio::spawn(async move {
                let reply = nitrosync_transport::read_one_frame::<_, ConnectReply>(&mut s)
                    .await
                    .unwrap();
                assert_eq!(reply, Some(ConnectReply::Connected), "tunnel {i}");
                let msg = format!("tunnel {i} says hello").repeat(20);
                s.write_all(msg.as_bytes()).await.unwrap();
                s.shutdown().await.unwrap();
                let mut back = String::new();
                s.read_to_string(&mut back).await.unwrap();
                assert_eq!(back, msg, "tunnel {i}");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let stats = relay.stats().await;
    assert_eq!(stats["connected"], u64::try_from(N).unwrap());
    assert_eq!(
        stats["refused"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        0
    );
}

#[tokio::test]
async fn prometheus_metrics_report_the_relay() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let relay = RelayUnderTest::start(&["--region", "us-east-1", "--metrics-listen", &addr]).await;
    let (reply, _) = relay.open("evil.example.com", 443).await;
    assert!(matches!(reply, ConnectReply::Refused { .. }));
    let body = nitrosync_tests::wait_for("metrics", std::time::Duration::from_secs(10), || {
        let addr = addr.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(&addr).await.ok()?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).await.ok()?;
            Some(out)
        }
    })
    .await
    .unwrap();
    assert!(body.contains("text/plain; version=0.0.4"), "{body}");
    assert!(
        body.contains("nitrosync_relay_refused_total{reason=\"not_allowed\"} 1"),
        "{body}"
    );
    assert!(body.contains("nitrosync_enclave_connected 0"), "{body}");
    assert!(
        body.contains("# TYPE nitrosync_queue_depth gauge"),
        "{body}"
    );
}
