//! `nitrosync kms template`: the KMS key that seals the enclave's identity, from the released
//! images' measurements ([`nitrosync_iam::kms`]). Local only: no daemon, no tenant key.

use crate::tenant::trust::read_measurements;
use crate::{CliError, KmsFormat, KmsTemplateArgs, LocalCode, error_chain, fail};
use nitrosync_iam::IamError;
use nitrosync_iam::kms::{self, KmsKeyInput, ReleasedImage};

/// The inputs that are one flag each, as `IamError::Kms` names them.
const FLAG_FIELDS: [&str; 5] = [
    "account",
    "key_admin_arn",
    "enclave_role_arn",
    "region",
    "alias",
];

/// A bad flag value: one line naming the flag, exit 2.
fn usage(e: &IamError) -> CliError {
    match e {
        IamError::Kms { field, reason } if FLAG_FIELDS.contains(&field.as_str()) => fail(
            LocalCode::InvalidFlag,
            format!("--{}: {reason}", field.replace('_', "-")),
        ),
        e => fail(LocalCode::InvalidFlag, error_chain(e)),
    }
}

/// The released images: one per measurements file (each read once), or one per `--pcr0`.
fn images(a: &KmsTemplateArgs) -> Result<Vec<ReleasedImage>, CliError> {
    if a.measurements.is_empty() {
        let many = a.pcr0.len() > 1;
        return a
            .pcr0
            .iter()
            .enumerate()
            .map(|(i, hex)| {
                let source = if many {
                    format!("--pcr0 #{}", i + 1)
                } else {
                    "--pcr0".to_owned()
                };
                ReleasedImage::from_pcr0(&source, hex).map_err(|e| usage(&e))
            })
            .collect();
    }
    a.measurements
        .iter()
        .map(|path| {
            let m = read_measurements(path).map_err(|e| {
                fail(
                    LocalCode::InvalidFlag,
                    format!("--measurements {}", error_chain(&e)),
                )
            })?;
            ReleasedImage::from_measurements(&path.display().to_string(), &m).map_err(|e| usage(&e))
        })
        .collect()
}

/// Prints the key in the chosen format; warnings (images pinned by PCR0 only, simulator
/// measurements) go to stderr as well as into the output. Without `--region`, the region is the
/// AWS CLI's default (`AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's) when one is set.
pub async fn template(a: &KmsTemplateArgs) -> Result<(), CliError> {
    let region = match &a.region {
        Some(region) => {
            crate::region_flag(region)?;
            Some(region.clone())
        }
        None => crate::default_region().await?,
    };
    template_in(a, region)
}

/// [`template`] with the region decided.
fn template_in(a: &KmsTemplateArgs, region: Option<String>) -> Result<(), CliError> {
    let input = KmsKeyInput {
        account: a.account.clone(),
        key_admin_arn: a.key_admin_arn.clone(),
        enclave_role_arn: a.enclave_role_arn.clone(),
        region,
        alias: a.alias.clone(),
        images: images(a)?,
    };
    let policy = kms::kms_json(&input).map_err(|e| usage(&e))?;
    for w in &policy.warnings {
        note!("nitrosync: warning: {w}");
    }
    // Every form is JSON (Terraform in its JSON syntax), whatever --output says.
    match a.format {
        KmsFormat::Json => crate::output::json(&policy),
        KmsFormat::Cloudformation => {
            crate::output::json_text(&kms::kms_cloudformation(&input).map_err(|e| usage(&e))?);
            Ok(())
        }
        KmsFormat::Terraform => {
            crate::output::json_text(&kms::kms_terraform(&input).map_err(|e| usage(&e))?);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command, KmsCommand};
    use clap::Parser;

    const ADMIN: &str = "arn:aws:iam::123456789012:role/kms-admin";
    const ENCLAVE: &str = "arn:aws:iam::123456789012:role/nitrosync-parent";

    /// `kms template` with good defaults for the flags `extra` does not give.
    fn parse(extra: &[&str]) -> Result<KmsTemplateArgs, clap::Error> {
        let mut argv = vec!["nitrosync", "kms", "template"];
        for (flag, value) in [
            ("--account", "123456789012"),
            ("--key-admin-arn", ADMIN),
            ("--enclave-role-arn", ENCLAVE),
            ("--format", "json"),
        ] {
            if !extra.contains(&flag) {
                argv.extend([flag, value]);
            }
        }
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Kms(KmsCommand::Template(a)) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    fn measurements_file(dir: &std::path::Path, seed: u8) -> String {
        let m = nitrosync_shared::measurements::Measurements::new(
            nitrosync_shared::measurements::ImageKind::Eif,
            &[seed; 48],
            &[seed + 1; 48],
            &[seed + 2; 48],
        );
        let path = dir.join(format!("m{seed}.json"));
        std::fs::write(&path, serde_json::to_vec(&m).unwrap()).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn images_come_from_files_or_pcr0_but_not_both() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            measurements_file(dir.path(), 1),
            measurements_file(dir.path(), 9),
        );
        let args = parse(&["--measurements", &a, "--measurements", &b]).unwrap();
        let got = images(&args).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(ReleasedImage::is_complete));
        assert_eq!(got[1].source, b);
        let pcr0 = "ab".repeat(48);
        let got = images(&parse(&["--pcr0", &pcr0]).unwrap()).unwrap();
        assert_eq!(
            (got[0].source.as_str(), got[0].is_complete()),
            ("--pcr0", false)
        );
        for bad in [
            vec!["--measurements", &a, "--pcr0", &pcr0],
            vec![],
            vec!["--measurements", &a, "--format", "yaml"],
        ] {
            let e = parse(&bad).unwrap_err();
            assert_eq!(e.exit_code(), i32::from(crate::EXIT_USAGE), "{bad:?}: {e}");
        }
    }

    #[test]
    fn bad_values_are_one_line_usage_errors_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = measurements_file(dir.path(), 1);
        let zero = measurements_file(dir.path(), 0);
        let zero2 = dir.path().join("zero2.json");
        let m = nitrosync_shared::measurements::Measurements::new(
            nitrosync_shared::measurements::ImageKind::Eif,
            &[1; 48],
            &[2; 48],
            &[0; 48],
        );
        std::fs::write(&zero2, serde_json::to_vec(&m).unwrap()).unwrap();
        let zero2 = zero2.to_string_lossy().into_owned();
        let missing = dir
            .path()
            .join("absent.json")
            .to_string_lossy()
            .into_owned();
        for (extra, want) in [
            (
                vec!["--measurements", &file, "--account", "12"],
                "--account: must be 12 digits",
            ),
            (
                vec!["--measurements", &file, "--key-admin-arn", "admin"],
                "--key-admin-arn: ",
            ),
            (
                vec!["--measurements", &file, "--region", "mars-1"],
                "--region: \"mars-1\" is not an AWS region",
            ),
            (
                vec!["--measurements", &file, "--alias", "x"],
                "--alias: must start with alias/",
            ),
            (
                vec!["--pcr0", "abcd"],
                "--pcr0 PCR0: must be 96 hex characters",
            ),
            (vec!["--measurements", &zero], "PCR0 is pinned to zeros"),
            (
                vec!["--measurements", &zero2],
                "zero2.json PCR2: is all zeros",
            ),
            (vec!["--measurements", &missing], "--measurements "),
        ] {
            let args = parse(&extra).unwrap_or_else(|e| panic!("{extra:?}: {e}"));
            let region = args.region.clone();
            let e = match region {
                Some(r) => crate::region_flag(&r).and_then(|()| template_in(&args, Some(r))),
                None => template_in(&args, None),
            }
            .unwrap_err();
            assert_eq!(e.exit, crate::EXIT_USAGE, "{extra:?}: {}", e.message);
            assert!(e.message.contains(want), "{extra:?}: {}", e.message);
            assert!(!e.message.contains('\n'), "{}", e.message);
        }
    }
}
