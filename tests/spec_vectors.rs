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

/// The counts and missing files of a trailer vector.
fn counts_and_missing(v: &Value) -> (Vec<(String, u64)>, Vec<String>) {
    let counts = v["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c[0].as_str().unwrap().to_owned(), c[1].as_u64().unwrap()))
        .collect();
    let missing = v["missingFiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    (counts, missing)
}

fn unhex(s: &str) -> [u8; 32] {
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    d
}

/// Version 2 of the field (the SHA-256 of the uncompressed bytes) is read:
/// the digests come back by position, marked as covering the content, and
/// the bytes round-trip unchanged.
#[test]
fn trailer_v2_vector() {
    use lvbak::manifest::{DigestOf, Trailer};
    use sha2::{Digest, Sha256};
    let v = load("trailer-v2.json");
    let bytes = v["bytes"].as_str().unwrap().as_bytes();
    let entries = v["entries"].as_array().unwrap();
    for parsed in [
        Trailer::parse(bytes, 128).unwrap(),
        Trailer::from_reader(bytes, 128).unwrap().unwrap(),
    ] {
        let l = parsed.lvbak.as_ref().unwrap();
        assert_eq!((l.version, l.covers()), (2, DigestOf::Content));
        for (i, e) in entries.iter().enumerate() {
            let want: [u8; 32] = Sha256::digest(e["content"].as_str().unwrap().as_bytes()).into();
            assert_eq!(unhex(e["sha256"].as_str().unwrap()), want);
            assert_eq!(parsed.digest_at(i), Some(want));
        }
        assert_eq!(parsed.to_json(), bytes);
    }
}

#[test]
fn trailer_vector() {
    use base64::Engine as _;
    use lvbak::manifest::{DigestOf, LvbakTrailer, Trailer};
    use sha2::{Digest, Sha256};
    use std::io::Read as _;
    let v = load("trailer.json");
    let (counts, missing) = counts_and_missing(&v);
    let entries = v["entries"].as_array().unwrap();
    // Each digest is the SHA-256 of the stored bytes, which hold the
    // content (deflated or as is).
    let digests: Vec<[u8; 32]> = entries
        .iter()
        .map(|e| {
            let stored = base64::engine::general_purpose::STANDARD
                .decode(e["stored"].as_str().unwrap())
                .unwrap();
            let mut content = Vec::new();
            match e["method"].as_str().unwrap() {
                "deflate" => {
                    flate2::read::DeflateDecoder::new(&stored[..])
                        .read_to_end(&mut content)
                        .unwrap();
                }
                "stored" => content = stored.clone(),
                other => panic!("method {other}"),
            }
            assert_eq!(content, e["content"].as_str().unwrap().as_bytes());
            let d: [u8; 32] = Sha256::digest(&stored).into();
            assert_eq!(lvbak::manifest::hex(&d), e["sha256"].as_str().unwrap());
            d
        })
        .collect();
    let t = Trailer::new(
        counts,
        missing,
        Some(LvbakTrailer::in_order(digests.clone())),
    );
    assert_eq!(
        t.lvbak.as_ref().map(LvbakTrailer::covers),
        Some(DigestOf::Stored)
    );
    let bytes = v["bytes"].as_str().unwrap().as_bytes();
    assert_eq!(
        String::from_utf8(t.to_json()).unwrap(),
        v["bytes"].as_str().unwrap()
    );
    for parsed in [
        Trailer::parse(bytes, 128).unwrap(),
        Trailer::from_reader(bytes, 128).unwrap().unwrap(),
    ] {
        for (i, d) in digests.iter().enumerate() {
            assert_eq!(parsed.digest_at(i), Some(*d));
        }
        assert_eq!(parsed.digest_at(digests.len()), None);
        assert_eq!(parsed.to_json(), bytes);
    }
    // Base64 of the wrong length is not a digest field: kept, not used.
    let short = String::from_utf8(bytes.to_vec())
        .unwrap()
        .replace("\"entries\": 3", "\"entries\": 4");
    let p = Trailer::parse(short.as_bytes(), 128).unwrap();
    assert!(p.lvbak.is_none());
    assert!(p.raw["lvbak"]["sha256"].is_string());
    assert_eq!(
        Trailer::from_reader(short.as_bytes(), 128)
            .unwrap()
            .unwrap(),
        p
    );
}
