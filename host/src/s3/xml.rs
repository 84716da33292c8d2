//! The S3 XML documents the client reads and writes.

use serde::Deserialize;

/// One object of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The full object key, URL-decoded when the service encoded it.
    pub key: String,
    /// Object size in bytes (0 when the listing omitted it).
    pub size: u64,
    /// RFC 3339 / ISO 8601 as the service sent it.
    pub last_modified: String,
    /// The ETag as listed (quotes included), if the service listed one.
    pub etag: Option<String>,
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects of this page, in the service's (key) order.
    pub objects: Vec<ObjectInfo>,
    /// Common prefixes ("directories") when a delimiter was given.
    pub prefixes: Vec<String>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    encoding_type: Option<String>,
    #[serde(default)]
    contents: Vec<Contents>,
    #[serde(default)]
    common_prefixes: Vec<CommonPrefix>,
    #[serde(default)]
    next_continuation_token: Option<String>,
    /// v1 only.
    #[serde(default)]
    next_marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Contents {
    key: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    last_modified: String,
    #[serde(default, rename = "ETag")]
    etag: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CommonPrefix {
    prefix: String,
}

fn url_decode(s: String, encoded: bool) -> Result<String, String> {
    if !encoded {
        return Ok(s);
    }
    // `encoding-type=url` encodes with form rules for keys: `+` never appears
    // unencoded for a space in S3's output, so a plain percent-decode is right.
    percent_encoding::percent_decode_str(&s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|e| format!("listing key is not UTF-8 after decoding: {e}"))
}

/// Parses a ListObjectsV2 (`v1 == false`) or ListObjects (v1) response.
pub fn parse_list(body: &[u8], v1: bool) -> Result<ListPage, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let doc: ListBucketResult = quick_xml::de::from_str(text).map_err(|e| format!("bad ListBucketResult: {e}"))?;
    let encoded = doc.encoding_type.as_deref() == Some("url");
    let mut objects = Vec::with_capacity(doc.contents.len());
    for c in doc.contents {
        objects.push(ObjectInfo {
            key: url_decode(c.key, encoded)?,
            size: c.size,
            last_modified: c.last_modified,
            etag: c.etag,
        });
    }
    let prefixes = doc
        .common_prefixes
        .into_iter()
        .map(|p| url_decode(p.prefix, encoded))
        .collect::<Result<Vec<_>, _>>()?;
    let next_token = if !doc.is_truncated {
        None
    } else if v1 {
        // v1 gives NextMarker only with a delimiter; otherwise the last key.
        match doc.next_marker.filter(|m| !m.is_empty()) {
            Some(m) => Some(url_decode(m, encoded)?),
            None => {
                let last_obj = objects.last().map(|o| o.key.clone());
                let last_pre = prefixes.last().cloned();
                last_obj.into_iter().chain(last_pre).max()
            }
        }
    } else {
        doc.next_continuation_token
    };
    Ok(ListPage {
        objects,
        prefixes,
        next_token,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InitiateMultipartUploadResult {
    upload_id: String,
}

pub fn parse_upload_id(body: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let doc: InitiateMultipartUploadResult =
        quick_xml::de::from_str(text).map_err(|e| format!("bad InitiateMultipartUploadResult: {e}"))?;
    Ok(doc.upload_id)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ETagResult {
    #[serde(default, rename = "ETag")]
    etag: Option<String>,
}

/// The ETag of a CompleteMultipartUpload, CopyObject or UploadPartCopy result.
pub fn parse_etag_result(body: &[u8]) -> Result<Option<String>, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let doc: ETagResult = quick_xml::de::from_str(text).map_err(|e| format!("bad result document: {e}"))?;
    Ok(doc.etag)
}

/// A part of a multipart upload, as CompleteMultipartUpload needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompletedPart {
    /// The part's number within its upload, from 1.
    pub part_number: u32,
    /// The ETag the service returned for the part, as sent (quotes included).
    pub etag: String,
}

pub fn complete_multipart_body(parts: &[CompletedPart]) -> String {
    let mut s = String::from("<CompleteMultipartUpload>");
    for p in parts {
        s.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            p.part_number,
            escape(&p.etag)
        ));
    }
    s.push_str("</CompleteMultipartUpload>");
    s
}

pub fn delete_objects_body(keys: &[String]) -> String {
    let mut s = String::from("<Delete><Quiet>true</Quiet>");
    for k in keys {
        s.push_str("<Object><Key>");
        s.push_str(&escape(k));
        s.push_str("</Key></Object>");
    }
    s.push_str("</Delete>");
    s
}

/// One failure inside a DeleteObjects result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteFailure {
    /// The key that was not deleted.
    pub key: String,
    /// The S3 error code (`AccessDenied`, ...).
    pub code: String,
    /// The service's message; may be empty.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteResult {
    #[serde(default, rename = "Error")]
    errors: Vec<DeleteErrorDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteErrorDoc {
    #[serde(default)]
    key: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

pub fn parse_delete_result(body: &[u8]) -> Result<Vec<DeleteFailure>, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let doc: DeleteResult = quick_xml::de::from_str(text).map_err(|e| format!("bad DeleteResult: {e}"))?;
    Ok(doc
        .errors
        .into_iter()
        .map(|e| DeleteFailure {
            key: e.key,
            code: e.code,
            message: e.message,
        })
        .collect())
}

/// A multipart upload in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadInfo {
    /// The key the upload will create.
    pub key: String,
    /// The id that names the upload in UploadPart, Complete- and AbortMultipartUpload.
    pub upload_id: String,
    /// When the upload was started, RFC 3339 / ISO 8601 as the service sent it (empty if omitted).
    pub initiated: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListMultipartUploadsResult {
    #[serde(default)]
    upload: Vec<UploadDoc>,
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_upload_id_marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UploadDoc {
    key: String,
    upload_id: String,
    #[serde(default)]
    initiated: String,
}

/// A page of in-progress uploads and the markers of the next page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadsPage {
    /// The uploads of this page.
    pub uploads: Vec<UploadInfo>,
    /// `(key-marker, upload-id-marker)` for the next page.
    pub next: Option<(String, String)>,
}

pub fn parse_uploads(body: &[u8]) -> Result<UploadsPage, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let doc: ListMultipartUploadsResult =
        quick_xml::de::from_str(text).map_err(|e| format!("bad ListMultipartUploadsResult: {e}"))?;
    let next = if doc.is_truncated {
        Some((
            doc.next_key_marker.unwrap_or_default(),
            doc.next_upload_id_marker.unwrap_or_default(),
        ))
    } else {
        None
    };
    Ok(UploadsPage {
        uploads: doc
            .upload
            .into_iter()
            .map(|u| UploadInfo {
                key: u.key,
                upload_id: u.upload_id,
                initiated: u.initiated,
            })
            .collect(),
        next,
    })
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v2_listing_with_prefixes_and_url_encoding() {
        let body = br#"<ListBucketResult><Name>b</Name><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
<Contents><Key>a%20b%2Bc.txt</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"e1"</ETag><Size>3</Size></Contents>
<CommonPrefixes><Prefix>dir/</Prefix></CommonPrefixes>
<Contents><Key>z</Key><Size>0</Size></Contents>
<NextContinuationToken>tok</NextContinuationToken></ListBucketResult>"#;
        let page = parse_list(body, false).unwrap();
        assert_eq!(page.objects.len(), 2);
        assert_eq!(page.objects[0].key, "a b+c.txt");
        assert_eq!(page.objects[0].size, 3);
        assert_eq!(page.prefixes, vec!["dir/"]);
        assert_eq!(page.next_token.as_deref(), Some("tok"));
    }

    #[test]
    fn v1_listing_without_next_marker_continues_after_last_key() {
        let body = b"<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a</Key><Size>1</Size></Contents><Contents><Key>b</Key><Size>1</Size></Contents></ListBucketResult>";
        assert_eq!(parse_list(body, true).unwrap().next_token.as_deref(), Some("b"));
    }

    #[test]
    fn request_bodies_escape_keys() {
        assert_eq!(
            delete_objects_body(&["a&<b>".into()]),
            "<Delete><Quiet>true</Quiet><Object><Key>a&amp;&lt;b&gt;</Key></Object></Delete>"
        );
        let parts = [CompletedPart {
            part_number: 1,
            etag: "\"x\"".into(),
        }];
        assert!(complete_multipart_body(&parts).contains("<ETag>&quot;x&quot;</ETag>"));
    }

    #[test]
    fn parses_delete_errors_and_uploads() {
        let d = b"<DeleteResult><Deleted><Key>a</Key></Deleted><Error><Key>b</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>";
        assert_eq!(parse_delete_result(d).unwrap()[0].key, "b");
        let u = b"<ListMultipartUploadsResult><Upload><Key>k</Key><UploadId>u1</UploadId><Initiated>t</Initiated></Upload><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";
        let page = parse_uploads(u).unwrap();
        assert_eq!(page.uploads[0].upload_id, "u1");
        assert!(page.next.is_none());
    }
}
