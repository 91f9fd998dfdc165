//! `AWS_PROFILE` for object stores: static keys, region and endpoint from `~/.aws/credentials`
//! and `~/.aws/config`, read the way the AWS CLI reads them. A small reader instead of the AWS
//! SDK's config crate, which would bring a second HTTP stack for two INI files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The settings one profile gives, each with the file it came from.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    /// Ways of getting credentials that need the AWS CLI (SSO, assumed roles, a process).
    pub unsupported: Vec<String>,
}

/// Where the two files live: `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE`, else `~/.aws/`.
pub fn files() -> (Option<PathBuf>, Option<PathBuf>) {
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws"));
    let pick = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(name)))
    };
    (
        pick("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        pick("AWS_CONFIG_FILE", "config"),
    )
}

/// The profile named by `AWS_PROFILE` (or `default`). `Ok(None)` when neither file has it;
/// an explicitly named profile that does not exist is an error naming both files.
pub fn load() -> Result<Option<Profile>, String> {
    let explicit = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty());
    let name = explicit.clone().unwrap_or_else(|| "default".into());
    let (credentials, config) = files();
    let profile = read(&name, credentials.as_deref(), config.as_deref());
    match (profile, explicit) {
        (Some(p), _) => Ok(Some(p)),
        (None, Some(name)) => Err(format!(
            "AWS_PROFILE is '{name}' but neither {} nor {} has a [{name}] section; \
             create it with `aws configure --profile {name}` or unset AWS_PROFILE",
            show(credentials.as_deref()),
            show(config.as_deref())
        )),
        (None, None) => Ok(None),
    }
}

fn show(path: Option<&Path>) -> String {
    path.map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.aws/credentials".into())
}

/// Read profile `name`: the credentials file's `[name]` wins over the config file's
/// `[profile name]` (`[default]` in both), as in the AWS CLI.
pub fn read(name: &str, credentials: Option<&Path>, config: Option<&Path>) -> Option<Profile> {
    let text = |p: Option<&Path>| p.and_then(|p| std::fs::read_to_string(p).ok());
    let from_credentials = text(credentials).and_then(|t| section(&t, name));
    let config_name = if name == "default" {
        "default".to_string()
    } else {
        format!("profile {name}")
    };
    let from_config = text(config).and_then(|t| section(&t, &config_name));
    if from_credentials.is_none() && from_config.is_none() {
        return None;
    }
    let get = |key: &str| {
        from_credentials
            .as_ref()
            .and_then(|s| s.get(key))
            .or_else(|| from_config.as_ref().and_then(|s| s.get(key)))
            .cloned()
    };
    let unsupported = [
        "credential_process",
        "sso_session",
        "sso_start_url",
        "role_arn",
        "source_profile",
    ]
    .iter()
    .filter(|k| get(k).is_some())
    .map(|k| k.to_string())
    .collect();
    Some(Profile {
        name: name.to_string(),
        access_key_id: get("aws_access_key_id"),
        secret_access_key: get("aws_secret_access_key"),
        session_token: get("aws_session_token").or_else(|| get("aws_security_token")),
        region: get("region"),
        endpoint_url: get("endpoint_url"),
        unsupported,
    })
}

/// The top-level `key = value` pairs of section `[name]`. Indented lines are sub-settings
/// of the key above them (`s3 =` followed by `  max_concurrent_requests = …`) and skipped.
fn section(text: &str, name: &str) -> Option<HashMap<String, String>> {
    let mut found: Option<HashMap<String, String>> = None;
    let mut inside = false;
    for raw in text.lines() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(header) = trimmed.strip_prefix('[') {
            let header = header.trim_end_matches(']').trim();
            let header = header.split_whitespace().collect::<Vec<_>>().join(" ");
            inside = header == name;
            if inside && found.is_none() {
                found = Some(HashMap::new());
            }
            continue;
        }
        if !inside || line.starts_with([' ', '\t']) {
            continue;
        }
        if let (Some(map), Some((key, value))) = (found.as_mut(), trimmed.split_once('=')) {
            map.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn credentials_win_over_config_and_named_profiles_use_the_profile_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = write(
            dir.path(),
            "credentials",
            "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = s1\n\n\
             [dev]\naws_access_key_id=AKDEV\naws_secret_access_key= s2 \naws_session_token = t\n",
        );
        let config = write(
            dir.path(),
            "config",
            "# comment\n[default]\nregion = us-west-2\n[profile dev]\nregion = eu-central-1\n\
             endpoint_url = http://127.0.0.1:9000\ns3 =\n  addressing_style = path\n\
             aws_access_key_id = AKIGNORED\n[dev]\nregion = wrong-section\n",
        );
        let dev = read("dev", Some(&credentials), Some(&config)).unwrap();
        assert_eq!(dev.access_key_id.as_deref(), Some("AKDEV"));
        assert_eq!(dev.secret_access_key.as_deref(), Some("s2"));
        assert_eq!(dev.session_token.as_deref(), Some("t"));
        assert_eq!(dev.region.as_deref(), Some("eu-central-1"));
        assert_eq!(dev.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        let default = read("default", Some(&credentials), Some(&config)).unwrap();
        assert_eq!(default.access_key_id.as_deref(), Some("AKDEFAULT"));
        assert_eq!(default.region.as_deref(), Some("us-west-2"));
        assert!(read("missing", Some(&credentials), Some(&config)).is_none());
    }

    #[test]
    fn profiles_that_need_the_cli_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let config = write(
            dir.path(),
            "config",
            "[profile sso]\nsso_session = corp\nregion = us-east-1\n",
        );
        let sso = read("sso", None, Some(&config)).unwrap();
        assert_eq!(sso.unsupported, vec!["sso_session".to_string()]);
        assert!(sso.access_key_id.is_none());
    }
}
