//! Token signing algorithms by their names in `auth.token.signingalgorithms`.

use jsonwebtoken::Algorithm;

/// Parses an algorithm name from `signingalgorithms`.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    use Algorithm as A;
    Ok(match name.to_ascii_uppercase().as_str() {
        "RS256" => A::RS256,
        "RS384" => A::RS384,
        "RS512" => A::RS512,
        "PS256" => A::PS256,
        "PS384" => A::PS384,
        "PS512" => A::PS512,
        "ES256" => A::ES256,
        "ES384" => A::ES384,
        "EDDSA" => A::EdDSA,
        other => return Err(format!("unknown or unsupported signing algorithm `{other}`")),
    })
}
