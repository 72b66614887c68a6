//! The enclave's control server against a host that connects and never finishes a frame.

use nitrosync_shared::Endpoint;
use nitrosync_shared::control::{RequestBody, ResponseBody};
use nitrosync_tests::{EnclaveControl, Sockets, start_enclave_with, wait_for};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn half_sent_frames_do_not_block_new_control_connections() {
    let dir = tempfile::tempdir().unwrap();
    // No request here reaches AWS: any CA will do.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["aws-sim.invalid".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert.pem()).unwrap();
    let sockets = Sockets::in_dir(dir.path());
    // One second instead of ten, so the test is quick.
    let args = ["--control-preface-timeout-s".to_owned(), "1".to_owned()];
    let mut enclave = start_enclave_with(dir.path(), &sockets, &ca, "enclave.log", &args).unwrap();
    let control = sockets.control.clone();
    wait_for("the control socket", Duration::from_secs(30), || {
        let exists = control.exists();
        async move { exists.then_some(()) }
    })
    .await
    .unwrap();

    // More connections than the enclave serves at once (4), each stuck two bytes into the
    // length prefix of its first frame, and kept open.
    let mut stuck = Vec::new();
    for _ in 0..5 {
        let mut s = nitrosync_transport::connect(&Endpoint::Unix(control.clone()))
            .await
            .unwrap();
        s.write_all(&[0, 0]).await.unwrap();
        stuck.push(s);
    }
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        let mut ctl = EnclaveControl::connect(&control).await.unwrap();
        ctl.request(RequestBody::Health).await.unwrap()
    })
    .await
    .expect("a new connection was answered while half-sent ones held the slots");
    assert!(matches!(answer, ResponseBody::Health(_)), "{answer:?}");
    enclave.check_alive().unwrap();
    let log = std::fs::read_to_string(dir.path().join("enclave.log")).unwrap();
    assert!(log.contains("no complete frame within 1000 ms"), "{log}");
    drop(stuck);
    let status = enclave.stop(Duration::from_secs(5)).await.unwrap();
    assert!(status.success(), "{status}");
}
