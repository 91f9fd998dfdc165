//! Advice added to errors: the near name of a mistyped table, what to raise when memory runs out.

use datafusion::catalog::SchemaProvider;

use super::Session;
use crate::config::format_size;
use crate::error::{AugurError, ErrorClass};

pub fn explain(session: &Session, e: AugurError) -> AugurError {
    if matches!(e, AugurError::Hinted { .. } | AugurError::Redacted { .. }) {
        return e;
    }
    let text = e.to_string();
    let hint = match e.class() {
        _ if object_store_error(&e) => object_store_hint(session, &text),
        ErrorClass::UndefinedTable => missing_table_hint(session, &text),
        ErrorClass::DiskFull => Some(
            "the disk is full: free space (or move the database directory) and retry; \
             nothing was committed, stored data is unchanged"
                .into(),
        ),
        ErrorClass::OutOfMemory => Some(format!(
            "the memory limit is {}; start augur with a larger --memory-limit, or reduce what \
             the query keeps in memory (fewer columns, a more selective filter)",
            format_size(session.db.memory_limit())
        )),
        _ if text.contains("Error while parsing value") || text.contains("Error parsing") => Some(
            "a value in the file does not match the column's type: fix the value, or declare \
             the column as VARCHAR and convert it with TRY_CAST"
                .into(),
        ),
        _ => super::functions::signature_hint(session, &text),
    };
    match hint {
        Some(hint) => AugurError::Hinted {
            source: Box::new(e),
            hint,
        },
        None => e,
    }
}

/// The error with every credential Augur knows of, and those written in `sql`, masked.
pub fn redact(session: &Session, e: AugurError, sql: &str) -> AugurError {
    let also = super::store_options::secret_values(sql);
    match session.db.object_stores().redact(&e.to_string(), &also) {
        Some(message) => AugurError::Redacted {
            class: e.class(),
            message,
        },
        None => e,
    }
}

fn object_store_error(e: &AugurError) -> bool {
    let text = e.to_string();
    text.contains("Object Store error")
        || text.contains("Generic S3 error")
        || text.contains("Generic HTTP")
        || text.contains("s3://")
}

/// What to set or fix for an S3 failure, with how the bucket's store was configured.
fn object_store_hint(session: &Session, text: &str) -> Option<String> {
    let described = session.db.object_stores().describe_mentioned(text);
    let unsigned = described.as_ref().is_some_and(|d| d.contains("unsigned"));
    let unreachable = text.contains("error sending request")
        || text.contains("onnect")
        || text.contains("timed out")
        || text.contains("retries");
    let setup = described
        .map(|d| format!(" (store {d})"))
        .unwrap_or_default();
    let advice = if unreachable {
        "the object store did not answer: check that the server at AWS_ENDPOINT_URL \
         ('aws.endpoint') is running and reachable"
    } else if unsigned {
        "no credentials were found, so the requests were unsigned: set AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or the table's 'aws.access_key_id' and \
         'aws.secret_access_key' options"
    } else if text.contains("NoSuchBucket") {
        "the bucket does not exist at this endpoint: check the bucket name, AWS_ENDPOINT_URL \
         ('aws.endpoint') and AWS_REGION ('aws.region')"
    } else if text.contains("InvalidAccessKeyId") || text.contains("SignatureDoesNotMatch") {
        "the server rejected the credentials: check AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY (or the table's 'aws.access_key_id' / 'aws.secret_access_key')"
    } else if text.contains("AccessDenied") {
        "access denied: these credentials may not do this; use credentials that may \
         (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the table's \
         'aws.access_key_id' and 'aws.secret_access_key' options)"
    } else if text.contains("403") || text.contains("lacked the necessary privileges") {
        "access denied (HTTP 403): the credentials are wrong or may not read this bucket; \
         check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or the table's \
         'aws.access_key_id' and 'aws.secret_access_key' options)"
    } else if text.contains("PermanentRedirect") || text.contains("301") {
        "the bucket is in another region: set AWS_REGION (or 'aws.region') to the bucket's region"
    } else if text.contains("NoSuchKey") || text.contains("not found") {
        "no object at that path: check the key, and that the prefix ends with '/' when it \
         names a folder"
    } else {
        return None;
    };
    Some(format!("{advice}{setup}"))
}

fn missing_table_hint(session: &Session, text: &str) -> Option<String> {
    let start = text.find("table '")? + 7;
    let end = start + text[start..].find('\'')?;
    let full = &text[start..end];
    let unqualified = full.strip_prefix("augur.public.").unwrap_or(full);
    let name = unqualified.rsplit('.').next().unwrap_or(unqualified);
    if unqualified.contains('/') || unqualified.contains('.') {
        return Some(format!(
            "no readable file matches '{unqualified}' (relative paths start at {}); check the path",
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        ));
    }
    let names = session.db.schema().table_names();
    let best = names
        .iter()
        .map(|n| (levenshtein(&n.to_lowercase(), &name.to_lowercase()), n))
        .min()?;
    if best.0 <= (name.len() / 3).max(2) {
        Some(format!("did you mean '{}'?", best.1))
    } else if names.is_empty() {
        Some("the database has no tables yet; SHOW TABLES lists them".into())
    } else {
        Some(format!("existing tables: {}", names.join(", ")))
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
