//! The test vectors in `spec/vectors/` checked against the implementation.

use lvbak::{EntryName, Manifest};
use serde_json::Value;

fn load(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("spec/vectors")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn entry_name_vectors() {
    let v = load("entry-names.json");
    let accept = v["accept"].as_array().unwrap();
    let refuse = v["refuse"].as_array().unwrap();
    assert!(accept.len() >= 10 && refuse.len() >= 10);
    for case in accept {
        let raw = case["name"].as_str().unwrap();
        let n = EntryName::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
        assert_eq!(n.to_string(), case["canonical"].as_str().unwrap());
        let kind = match &n {
            EntryName::Manifest => "manifest",
            EntryName::Trailer => "trailer",
            EntryName::Table(t) => {
                assert_eq!(case["table"], t.as_str());
                "table"
            }
            EntryName::VectorTable(t) => {
                assert_eq!(case["table"], t.as_str());
                "vector_table"
            }
            EntryName::SecretsIndex => "secrets_index",
            EntryName::SecretsEnvelope => "secrets_envelope",
            EntryName::File { bucket, .. } => {
                assert_eq!(case["bucket"], bucket.as_str());
                "file"
            }
        };
        assert_eq!(case["kind"], kind, "{raw}");
    }
    for case in refuse {
        let raw = case["name"].as_str().unwrap();
        let e = EntryName::parse(raw).expect_err(raw);
        let rule = format!("{:?}", e.rule);
        assert!(
            rule.starts_with(case["rule"].as_str().unwrap()),
            "{raw:?}: {rule}"
        );
    }
}

#[test]
fn manifest_vector() {
    let v = load("manifest.json");
    let mut m = Manifest::new(
        v["archiveId"].as_str().unwrap(),
        v["exportedAt"].as_i64().unwrap(),
    );
    m.include_vectors = v["includeVectors"].as_bool().unwrap();
    m.embedding_config.provider = v["embeddingConfig"]["provider"].as_str().map(str::to_owned);
    m.embedding_config.model = v["embeddingConfig"]["model"].as_str().map(str::to_owned);
    m.sync_raw();
    let bytes = m.to_json();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        v["bytes"].as_str().unwrap()
    );
    let back = Manifest::parse(&bytes, 64).unwrap();
    assert_eq!(back, m);
}
