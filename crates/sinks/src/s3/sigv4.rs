//! AWS Signature Version 4 for S3 requests, header form (`Authorization: AWS4-HMAC-SHA256 …`).
//! Written here rather than pulled from the AWS SDK: one request shape (PUT with a body whose
//! SHA-256 is sent), a few dozen lines, checked against AWS's published example.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// What one signature covers.
pub(crate) struct SigningInput<'a> {
    pub method: &'a str,
    /// The canonical URI: the path exactly as sent, already percent-encoded (S3 is not
    /// double-encoded).
    pub canonical_uri: &'a str,
    /// `(lowercase name, trimmed value)` of every signed header, `host` included.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body (the `x-amz-content-sha256` value).
    pub payload_hash: &'a str,
    /// `YYYYMMDD'T'HHMMSS'Z'`, the `x-amz-date` value.
    pub amz_date: &'a str,
    pub region: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
}

/// The `Authorization` header value for `input`.
pub(crate) fn authorization(input: &SigningInput<'_>) -> String {
    let mut headers: Vec<&(String, String)> = input.headers.iter().collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    let signed = signed.join(";");
    let date = input.amz_date.get(..8).unwrap_or(input.amz_date);
    let scope = format!("{date}/{}/s3/aws4_request", input.region);
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={}",
        input.access_key_id,
        signature(input)
    )
}

/// The hex signature for `input` (the last part of the `Authorization` header).
pub(crate) fn signature(input: &SigningInput<'_>) -> String {
    let mut headers: Vec<&(String, String)> = input.headers.iter().collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut canonical = format!("{}\n{}\n\n", input.method, input.canonical_uri);
    for (name, value) in &headers {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value.trim());
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";"));
    canonical.push('\n');
    canonical.push_str(input.payload_hash);

    let date = input.amz_date.get(..8).unwrap_or(input.amz_date);
    let scope = format!("{date}/{}/s3/aws4_request", input.region);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        input.amz_date,
        sha256_hex(canonical.as_bytes())
    );
    let k_date = hmac(format!("AWS4{}", input.secret_access_key).as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, input.region.as_bytes());
    let k_service = hmac(&k_region, b"s3");
    let k_signing = hmac(&k_service, b"aws4_request");
    hex(&hmac(&k_signing, string_to_sign.as_bytes()))
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// S3's URI encoding of one key segment: every byte but `A-Za-z0-9-._~` as `%XX` (uppercase).
pub(crate) fn uri_encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    /// AWS's "Example: GET Object" (Signature Version 4, header-based authentication, S3 API
    /// reference).
    #[test]
    fn aws_get_object_example() {
        let headers = h(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let input = SigningInput {
            method: "GET",
            canonical_uri: "/test.txt",
            headers: &headers,
            payload_hash: EMPTY_SHA256,
            amz_date: "20130524T000000Z",
            region: "us-east-1",
            access_key_id: "AKIAIOSFODNN7EXAMPLE",
            secret_access_key: SECRET,
        };
        assert_eq!(
            authorization(&input),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// AWS's "Example: PUT Object": a body, a `$` in the key (encoded), headers out of order.
    #[test]
    fn aws_put_object_example() {
        let body = b"Welcome to Amazon S3.";
        let hash = sha256_hex(body);
        assert_eq!(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
        let headers = h(&[
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("host", "examplebucket.s3.amazonaws.com"),
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", &hash),
        ]);
        let uri = format!("/{}", uri_encode_segment("test$file.text"));
        assert_eq!(uri, "/test%24file.text");
        let input = SigningInput {
            method: "PUT",
            canonical_uri: &uri,
            headers: &headers,
            payload_hash: &hash,
            amz_date: "20130524T000000Z",
            region: "us-east-1",
            access_key_id: "AKIAIOSFODNN7EXAMPLE",
            secret_access_key: SECRET,
        };
        assert_eq!(
            signature(&input),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
    }

    #[test]
    fn segment_encoding() {
        assert_eq!(uri_encode_segment("tenant=acme"), "tenant%3Dacme");
        assert_eq!(uri_encode_segment("a b+ü~_.-"), "a%20b%2B%C3%BC~_.-");
    }
}
