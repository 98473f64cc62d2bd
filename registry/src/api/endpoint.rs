//! Parses a `/v2/...` path into a typed endpoint. One function replaces a
//! route per nesting depth: repository names may contain slashes, so the
//! path is split at the last resource marker.

use crate::registry::digest::Digest;
use crate::registry::reference::{Reference, RepoName};

use super::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, Reference),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepoName, String),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, Digest),
}

impl Endpoint {
    /// What kind of endpoint this is, as a short fixed name: the `route`
    /// label of the request metrics and log line.
    pub fn kind(&self) -> &'static str {
        match self {
            Endpoint::Base => "base",
            Endpoint::Catalog => "catalog",
            Endpoint::Tags(_) => "tags",
            Endpoint::Manifest(..) => "manifest",
            Endpoint::Blob(..) => "blob",
            Endpoint::UploadStart(_) | Endpoint::Upload(..) => "upload",
            Endpoint::Referrers(..) => "referrers",
        }
    }

    pub fn repository(&self) -> Option<&RepoName> {
        match self {
            Endpoint::Base | Endpoint::Catalog => None,
            Endpoint::Tags(n)
            | Endpoint::Manifest(n, _)
            | Endpoint::Blob(n, _)
            | Endpoint::UploadStart(n)
            | Endpoint::Upload(n, _)
            | Endpoint::Referrers(n, _) => Some(n),
        }
    }
}

fn name(s: &str) -> Result<RepoName, ApiError> {
    Ok(RepoName::parse(s)?)
}

fn digest(s: &str) -> Result<Digest, ApiError> {
    Ok(s.parse::<Digest>()?)
}

/// Parses the path after `/v2` (the raw, still percent-encoded path: a
/// valid name never contains `%`, so encoded traversal is refused as an
/// invalid name rather than decoded).
pub fn parse(rest: &str) -> Result<Endpoint, ApiError> {
    let rest = match rest {
        "" | "/" => return Ok(Endpoint::Base),
        r => r.strip_prefix('/').ok_or_else(ApiError::not_found)?,
    };
    if rest == "_catalog" {
        return Ok(Endpoint::Catalog);
    }
    if let Some(n) = rest.strip_suffix("/tags/list") {
        return Ok(Endpoint::Tags(name(n)?));
    }
    if let Some(n) = rest.strip_suffix("/blobs/uploads/").or_else(|| rest.strip_suffix("/blobs/uploads")) {
        return Ok(Endpoint::UploadStart(name(n)?));
    }
    if let Some((n, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Ok(Endpoint::Upload(name(n)?, id.to_string()));
    }
    if let Some((n, d)) = rest.rsplit_once("/blobs/") {
        let n = name(n)?;
        return Ok(Endpoint::Blob(n, digest(d)?));
    }
    if let Some((n, r)) = rest.rsplit_once("/manifests/") {
        let n = name(n)?;
        return Ok(Endpoint::Manifest(n, Reference::parse(r)?));
    }
    if let Some((n, d)) = rest.rsplit_once("/referrers/") {
        let n = name(n)?;
        return Ok(Endpoint::Referrers(n, digest(d)?));
    }
    Err(ApiError::not_found())
}

/// [`parse`] for a request with `method`. A GET or HEAD of a manifest whose
/// reference is neither a tag nor a digest names nothing the registry could
/// hold: 404 `MANIFEST_UNKNOWN`, as distribution answers (its router matches
/// no route) and the v1.1 conformance suite requires. Writes keep the 400
/// that says what is wrong with the reference.
pub fn parse_request(rest: &str, method: &axum::http::Method) -> Result<Endpoint, ApiError> {
    use axum::http::Method;
    let parsed = parse(rest);
    if parsed.is_err()
        && (method == Method::GET || method == Method::HEAD)
        && let Some((n, r)) = rest.trim_start_matches('/').rsplit_once("/manifests/")
        && RepoName::parse(n).is_ok()
        && Reference::parse(r).is_err()
    {
        return Err(ApiError::manifest_unknown(format!("manifest unknown: `{r}` is neither a valid tag nor a digest")));
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::Code;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_every_endpoint() {
        let n = |s: &str| RepoName::parse(s).unwrap();
        let d: Digest = D.parse().unwrap();
        assert_eq!(parse("/").unwrap(), Endpoint::Base);
        assert_eq!(parse("").unwrap(), Endpoint::Base);
        assert_eq!(parse("/_catalog").unwrap(), Endpoint::Catalog);
        assert_eq!(parse("/a/b/c/tags/list").unwrap(), Endpoint::Tags(n("a/b/c")));
        assert_eq!(parse("/a/blobs/uploads/").unwrap(), Endpoint::UploadStart(n("a")));
        assert_eq!(parse("/a/blobs/uploads/xyz").unwrap(), Endpoint::Upload(n("a"), "xyz".into()));
        assert_eq!(parse(&format!("/a/b/blobs/{D}")).unwrap(), Endpoint::Blob(n("a/b"), d.clone()));
        assert_eq!(parse(&format!("/a/referrers/{D}")).unwrap(), Endpoint::Referrers(n("a"), d.clone()));
        assert_eq!(
            parse("/manifests/manifests/latest").unwrap(),
            Endpoint::Manifest(n("manifests"), Reference::parse("latest").unwrap())
        );
        // A repository may be named like a marker.
        assert_eq!(parse("/blobs/tags/list").unwrap(), Endpoint::Tags(n("blobs")));
    }

    #[test]
    fn refuses_traversal_and_junk() {
        for p in [
            "/../etc/tags/list",
            "/a/%2e%2e/tags/list",
            "/%2e%2e/manifests/x",
            "/a/../b/blobs/uploads/",
            "/A/tags/list",
        ] {
            assert_eq!(parse(p).unwrap_err().code, Code::NameInvalid, "{p}");
        }
        assert_eq!(parse("/a/blobs/sha256:zz").unwrap_err().code, Code::DigestInvalid);
        assert_eq!(parse("/a/manifests/bad:tag").unwrap_err().code, Code::DigestInvalid);
        assert_eq!(parse("/a/manifests/.bad").unwrap_err().code, Code::ManifestInvalid);
        assert_eq!(parse("/nothing-here").unwrap_err().status, axum::http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn reading_an_invalid_reference_is_manifest_unknown() {
        use axum::http::{Method, StatusCode};
        for r in [".INVALID_MANIFEST_NAME", "bad:tag", "sha256:zz", "a b"] {
            for m in [Method::GET, Method::HEAD] {
                let e = parse_request(&format!("/a/b/manifests/{r}"), &m).unwrap_err();
                assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, Code::ManifestUnknown), "{m} {r}");
            }
            let e = parse_request(&format!("/a/b/manifests/{r}"), &Method::PUT).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "PUT {r}");
        }
        assert_eq!(parse_request("/A/manifests/.x", &Method::GET).unwrap_err().code, Code::NameInvalid);
        assert!(parse_request("/a/manifests/latest", &Method::GET).is_ok());
    }
}
