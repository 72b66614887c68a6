//! Nothing lost by a slip of the hand (issue 13's data-loss cases): the input is read once, an
//! empty environment is refused, and a destructive command off a terminal needs `--yes`. Each
//! test asserts from the simulator's state that the secret is as the tenant last meant it.

use crate::cli::{Env, value_of};
use nitrosync_tests::cli_stdin;
use serde_json::json;

impl Env {
    async fn push_ok(&self, file: &str) {
        self.ok(&[
            "env",
            "push",
            "--destination",
            "app",
            "--file",
            file,
            "--wait",
        ])
        .await;
    }
}

#[tokio::test]
async fn an_empty_environment_is_refused_and_the_secret_keeps_its_values() {
    let e = Env::start().await;
    e.destination("app", "app/env", &[]).await;
    let full = e.env_file("full.env", "A=1\nB=2\n");
    e.push_ok(full.to_str().unwrap()).await;
    let writes = e.puts("app/env").await;
    for body in ["", "\n# only a comment\n\n"] {
        let empty = e.env_file("empty.env", body);
        let out = e
            .run(&[
                "env",
                "push",
                "--destination",
                "app",
                "--file",
                empty.to_str().unwrap(),
                "--wait",
            ])
            .await;
        assert_eq!(out.code, 1, "{body:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("--allow-empty"), "{}", out.stderr);
    }
    assert_eq!(
        value_of(&e.secret("app/env").await),
        json!({"A": "1", "B": "2"})
    );
    assert_eq!(e.puts("app/env").await, writes, "nothing was written");
    // Said on purpose, it empties the secret.
    let empty = e.env_file("empty.env", "");
    e.ok(&[
        "env",
        "push",
        "--destination",
        "app",
        "--file",
        empty.to_str().unwrap(),
        "--allow-empty",
        "--wait",
    ])
    .await;
    assert_eq!(value_of(&e.secret("app/env").await), json!({}));
    e.stack.stop().await.unwrap();
}

#[tokio::test]
async fn a_piped_environment_is_pushed_exactly_as_piped() {
    let e = Env::start().await;
    e.destination("app", "app/env", &[]).await;
    // `--file -` and a pipe named by path (`/dev/stdin`, as `<(…)` gives) are read once.
    for (file, body, want) in [
        (
            "-",
            "A=from-stdin\nB=2\n",
            json!({"A": "from-stdin", "B": "2"}),
        ),
        (
            "/dev/stdin",
            "C=through-a-pipe\n",
            json!({"C": "through-a-pipe"}),
        ),
    ] {
        let out = cli_stdin(
            &e.stack.sockets.admin,
            Some(&e.tenant),
            &[
                "env",
                "push",
                "--destination",
                "app",
                "--file",
                file,
                "--wait",
            ],
            body.as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(out.code, 0, "{file}: {}{}", out.stdout, out.stderr);
        assert_eq!(value_of(&e.secret("app/env").await), want, "{file}");
    }
    e.stack.stop().await.unwrap();
}

#[tokio::test]
async fn delete_off_a_terminal_without_yes_refuses_and_deletes_nothing() {
    let e = Env::start().await;
    e.destination("app", "app/env", &["--delete-policy", "force-delete"])
        .await;
    let f = e.env_file("app.env", "A=1\n");
    e.push_ok(f.to_str().unwrap()).await;
    let out = e.run(&["destination", "delete", "app"]).await;
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert!(
        out.stderr.contains("ERASED"),
        "it says what would happen: {}",
        out.stderr
    );
    let s = e.secret("app/env").await;
    assert_eq!(s["exists"], true);
    assert_eq!(value_of(&s), json!({"A": "1"}));
    e.stack.stop().await.unwrap();
}
