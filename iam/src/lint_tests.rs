//! The generated IAM, checked by the tools a customer's reviewer would run: `cfn-lint` on the
//! CloudFormation template, `parliament` on both policy documents, `terraform fmt` and
//! `terraform validate` on the Terraform module. The enclave's KMS key ([`crate::kms`]) gets the
//! same three checks.
//!
//! The Python linters come from the project's virtualenv (`$NITROSYNC_VENV`, else `.venv` beside
//! or above this crate): `pip install cfn-lint==1.58.0 parliament==1.6.4`. `terraform validate`
//! needs the AWS provider without a network: it is installed from a local plugin directory
//! (`$NITROSYNC_TF_PLUGIN_DIR`, else `/opt/tf-plugins`). A missing tool skips its test with a
//! message, or fails it when `NITROSYNC_REQUIRE_LINTERS=1`.

use super::kms::{self, kms_cloudformation, kms_terraform};
use super::tests::variants;
use super::{cloudformation, policy_documents, terraform};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn missing(what: &str) {
    let msg = format!("{what} is not installed; this check was SKIPPED");
    if std::env::var_os("NITROSYNC_REQUIRE_LINTERS").is_some_and(|v| v == "1") {
        panic!("{msg} (NITROSYNC_REQUIRE_LINTERS=1)");
    }
    eprintln!("{msg}");
}

fn venv_tool(tool: &str) -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut venvs: Vec<PathBuf> = std::env::var_os("NITROSYNC_VENV")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    venvs.push(manifest.join(".venv"));
    venvs.push(manifest.join("../.venv"));
    venvs
        .into_iter()
        .map(|v| v.join("bin").join(tool))
        .find(|p| p.is_file())
}

fn terraform_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("terraform"))
        .find(|p| p.is_file())
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn cfn_lint_passes_without_errors_or_warnings() {
    cfn_lint_clean(
        variants()
            .into_iter()
            .map(|(_, input)| cloudformation(&input).unwrap())
            .collect(),
    );
}

#[test]
fn kms_cfn_lint_passes_without_errors_or_warnings() {
    cfn_lint_clean(
        kms::tests::variants()
            .into_iter()
            .map(|(_, input)| kms_cloudformation(&input).unwrap())
            .collect(),
    );
}

fn cfn_lint_clean(templates: Vec<String>) {
    let Some(cfn_lint) = venv_tool("cfn-lint") else {
        return missing("cfn-lint (pip install cfn-lint==1.58.0)");
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![];
    for (i, template) in templates.into_iter().enumerate() {
        let path = dir.path().join(format!("variant{i}.json"));
        std::fs::write(&path, template).unwrap();
        files.push(path);
    }
    // Informational rules too: the template should be clean at every level.
    let out = run(Command::new(&cfn_lint)
        .args(["--format", "parseable", "--include-checks", "I", "--"])
        .args(&files));
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "cfn-lint: {}",
        text(&out)
    );
}

/// Parliament's findings that are wrong for these documents, each as (issue, detail, file kind).
///
/// - `MALFORMED` "neither Resource nor NotResource" on the trust policy: parliament reads every
///   document as an identity or resource policy, but a role trust policy must not have a
///   `Resource` (IAM rejects one); its target is the role it is attached to.
/// - `UNKNOWN_CONDITION_FOR_ACTION` for `kms:ResourceAliases` on `kms:GenerateDataKey` and
///   `kms:Decrypt` (alias variants): parliament only looks up an action's own condition keys,
///   while `kms:ResourceAliases` is a condition key of the `key` resource type those actions
///   act on (AWS KMS docs; parliament's bundled definition lists it under the `key` resource).
const PARLIAMENT_FALSE_POSITIVES: [(&str, &str, &str); 3] = [
    (
        "MALFORMED",
        "Statement contains neither Resource nor NotResource",
        "trust",
    ),
    (
        "UNKNOWN_CONDITION_FOR_ACTION",
        "Unknown condition kms:ResourceAliases for action kms:GenerateDataKey",
        "identity",
    ),
    (
        "UNKNOWN_CONDITION_FOR_ACTION",
        "Unknown condition kms:ResourceAliases for action kms:Decrypt",
        "identity",
    ),
];

#[test]
fn parliament_finds_nothing_at_medium_or_above() {
    let Some(parliament) = venv_tool("parliament") else {
        return missing("parliament (pip install parliament==1.6.4)");
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![];
    for (i, (_, input)) in variants().into_iter().enumerate() {
        let docs = policy_documents(&input).unwrap();
        for (kind, doc) in [
            ("identity", docs.identity_policy),
            ("trust", docs.trust_policy),
        ] {
            let path = dir.path().join(format!("variant{i}.{kind}.json"));
            std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
            files.push(path.to_string_lossy().into_owned());
        }
    }
    for (i, (_, input)) in kms::tests::variants().into_iter().enumerate() {
        let path = dir.path().join(format!("key{i}.kms.json"));
        let policy = kms::key_policy(&input).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&policy).unwrap()).unwrap();
        files.push(path.to_string_lossy().into_owned());
    }
    // Severities are MUTE < INFO < LOW < MEDIUM < HIGH < CRITICAL: MEDIUM and up are warnings.
    // The false positives are filtered here, by issue, detail and document kind: parliament
    // 1.6.4's own `--config` `ignore_locations` never matches (its `make_list` turns the YAML
    // values into empty lists), and muting a whole issue by severity would hide real findings.
    let out = run(Command::new(&parliament).args([
        "--json",
        "--minimum_severity",
        "MEDIUM",
        "--files",
        &files.join(","),
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut muted = 0;
    for line in stdout.lines() {
        let f: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
        let file = f["location"]["filepath"].as_str().unwrap_or_default();
        let known = PARLIAMENT_FALSE_POSITIVES
            .iter()
            .any(|(issue, detail, kind)| {
                f["issue"] == *issue
                    && f["detail"] == *detail
                    && file.ends_with(&format!(".{kind}.json"))
            });
        assert!(known, "parliament: {line}");
        muted += 1;
    }
    // Exit status 1 means "findings printed"; anything else is a crash.
    assert!(
        out.status.code() == Some(if muted == 0 { 0 } else { 1 }),
        "parliament: {}",
        text(&out)
    );
    // It did lint: every trust policy has the known finding. (The key policies have none.)
    assert!(muted >= variants().len(), "parliament: {}", text(&out));
}

#[test]
fn terraform_validate_passes() {
    terraform_validates(
        variants()
            .into_iter()
            .enumerate()
            .map(|(i, (_, input))| one_file(format!("variant{i}"), terraform(&input).unwrap()))
            .collect(),
    );
}

#[test]
fn kms_terraform_validate_passes() {
    terraform_validates(
        kms::tests::variants()
            .into_iter()
            .map(|(name, input)| one_file(name.to_owned(), kms_terraform(&input).unwrap()))
            .collect(),
    );
}

/// The files compose: the IAM of three destinations and two KMS keys, dropped into one
/// directory beside a root module that configures the provider and already uses the names the
/// files had before they were named after their destination (`nitrosync`, `current`,
/// `role_arn`), are one valid root module.
#[test]
fn terraform_files_validate_together_in_one_root_module() {
    let root = serde_json::json!({
        "terraform": {
            "required_providers": { "aws": { "source": "hashicorp/aws", "version": ">= 5.0" } }
        },
        "provider": { "aws": { "region": "us-east-1" } },
        "data": { "aws_caller_identity": { "current": {} }, "aws_region": { "current": {} } },
        "resource": {
            "aws_iam_role": {
                "nitrosync": { "name": "existing", "assume_role_policy": "{}" }
            }
        },
        "output": {
            "role_arn": { "value": "${aws_iam_role.nitrosync.arn}" },
            "key_arn": { "value": "${data.aws_caller_identity.current.account_id}" }
        }
    });
    let mut staging_key = kms::tests::input(vec![kms::tests::image(0x41)]);
    staging_key.alias = "alias/team/nitrosync-staging".into();
    let files = vec![
        (
            "root.tf.json".to_owned(),
            serde_json::to_string_pretty(&root).unwrap(),
        ),
        (
            "nitrosync-prod-api.tf.json".to_owned(),
            terraform(&super::tests::input(super::tests::destination())).unwrap(),
        ),
        (
            "nitrosync-staging.web.tf.json".to_owned(),
            terraform(&super::tests::second_destination()).unwrap(),
        ),
        (
            "nitrosync-longest.tf.json".to_owned(),
            terraform(&super::tests::longest()).unwrap(),
        ),
        (
            "nitrosync-kms.tf.json".to_owned(),
            kms_terraform(&kms::tests::input(vec![kms::tests::image(0x11)])).unwrap(),
        ),
        (
            "nitrosync-kms-staging.tf.json".to_owned(),
            kms_terraform(&staging_key).unwrap(),
        ),
    ];
    terraform_validates(vec![("one root module".to_owned(), files)]);
}

/// One module alone in the directory, as `main.tf.json`.
fn one_file(name: String, module: String) -> (String, Vec<(String, String)>) {
    (name, vec![("main.tf.json".to_owned(), module)])
}

/// `terraform validate` of each set of files, each set alone in the directory (one root module).
fn terraform_validates(sets: Vec<(String, Vec<(String, String)>)>) {
    let Some(tf) = terraform_bin() else {
        return missing("terraform");
    };
    let dir = tempfile::tempdir().unwrap();
    let terraform = |cwd: &Path| {
        let mut c = Command::new(&tf);
        c.current_dir(cwd)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_CLI_CONFIG_FILE", "/dev/null");
        c
    };
    let plugins = std::env::var_os("NITROSYNC_TF_PLUGIN_DIR")
        .map_or_else(|| PathBuf::from("/opt/tf-plugins"), PathBuf::from);
    if !plugins.join("registry.terraform.io/hashicorp/aws").is_dir() {
        return missing(&format!(
            "the Terraform AWS provider (no plugin directory at {})",
            plugins.display()
        ));
    }
    // One initialised directory; each set of files in turn.
    let work = dir.path().join("validate");
    std::fs::create_dir(&work).unwrap();
    let place = |files: &[(String, String)]| {
        for entry in std::fs::read_dir(&work).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().ends_with(".tf.json") {
                std::fs::remove_file(path).unwrap();
            }
        }
        for (file, text) in files {
            std::fs::write(work.join(file), text).unwrap();
        }
    };
    place(&sets[0].1);
    let plugin_dir = format!("-plugin-dir={}", plugins.display());
    let out = run(terraform(&work).args([
        "init",
        "-backend=false",
        "-input=false",
        "-no-color",
        &plugin_dir,
    ]));
    assert!(out.status.success(), "terraform init: {}", text(&out));
    for (name, files) in &sets {
        place(files);
        let out = run(terraform(&work).args(["validate", "-no-color"]));
        let shown: Vec<String> = files.iter().map(|(f, t)| format!("--- {f}\n{t}")).collect();
        assert!(
            out.status.success(),
            "terraform validate {name}: {}\n{}",
            text(&out),
            shown.join("\n")
        );
    }
}

/// The JSON-syntax escaping, checked by Terraform itself: the policies, the metadata and a
/// string full of template syntax read back as exactly the values they were written from
/// (`terraform apply` of outputs only needs no provider).
#[test]
fn terraform_reads_back_what_was_written() {
    use crate::terraform::literal;
    let Some(tf) = terraform_bin() else {
        return missing("terraform");
    };
    let (_, input) = variants().swap_remove(1);
    let docs = policy_documents(&input).unwrap();
    let tricky = "quote \" backslash \\ ${not.a.ref} %{ if x } $${x} tab\t newline\n é ✓";
    let metadata = format!(
        "{}<!-- ${{x}} %{{y}} \\n trailing spaces   \n\ttab -->",
        input.saml_metadata
    );
    let policy = |v: &serde_json::Value| literal(&serde_json::to_string(v).unwrap());
    let module = serde_json::json!({
        "output": {
            "identity": { "value": policy(&docs.identity_policy) },
            "trust": { "value": policy(&docs.trust_policy) },
            "tricky": { "value": literal(tricky) },
            "metadata": { "value": literal(&metadata) },
        }
    });
    let module = serde_json::to_string_pretty(&module).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.tf.json"), &module).unwrap();
    let terraform = |args: &[&str]| {
        let out = run(Command::new(&tf)
            .current_dir(dir.path())
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .args(args));
        assert!(
            out.status.success(),
            "terraform {args:?}: {}\n{module}",
            text(&out)
        );
        out
    };
    terraform(&["init", "-backend=false", "-input=false", "-no-color"]);
    terraform(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    let out = terraform(&["output", "-json", "-no-color"]);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let parsed = |k: &str| -> serde_json::Value {
        serde_json::from_str(got[k]["value"].as_str().unwrap()).unwrap()
    };
    assert_eq!(parsed("identity"), docs.identity_policy);
    assert_eq!(parsed("trust"), docs.trust_policy);
    assert_eq!(got["tricky"]["value"], tricky);
    assert_eq!(got["metadata"]["value"], metadata.as_str());
}
