//! The simulated proxy's `jwt_authn` filter, as Istio's `RequestAuthentication` configures it in front of the
//! Wasm filter: a `Bearer` token in `authorization` must be from the issuer (else 401), its payload becomes the
//! claims rules read, and the header is not forwarded (`forwardOriginalToken: false`); a request without a
//! token passes. The signature is **not** checked here (the simulated proxy holds no keys): the e2e replay
//! runs the same cases through Envoy's real `jwt_authn`, which does.

use super::{Headers, Response};

/// The token's claims (`None` without a token), or the 401 `jwt_authn` answers.
pub(super) fn verify(
    headers: &mut Headers,
    issuer: &str,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, Response> {
    let Some(at) = headers.iter().position(|(name, _)| name == "authorization") else { return Ok(None) };
    let token = headers.get(at).and_then(|(_, value)| value.strip_prefix("Bearer ")).map(str::to_owned);
    let Some(token) = token else { return Ok(None) };
    let claims = payload(&token).ok_or_else(|| refusal("Jwt is not in the form of Header.Payload.Signature"))?;
    if claims.get("iss").and_then(|iss| iss.as_str()) != Some(issuer) {
        return Err(refusal("Jwt issuer is not configured"));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if claims.get("exp").and_then(serde_json::Value::as_u64).is_some_and(|exp| exp < now) {
        return Err(refusal("Jwt is expired"));
    }
    headers.retain(|(name, _)| name != "authorization");
    Ok(Some(claims))
}

fn refusal(body: &str) -> Response {
    Response { status: 401, headers: Vec::new(), body: body.to_owned() }
}

/// The JSON object in a token's middle part.
fn payload(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else { return None };
    match serde_json::from_slice(&crate::credentials::base64::decode_url(payload)?).ok()? {
        serde_json::Value::Object(claims) => Some(claims),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_another_issuer_are_refused_and_the_header_is_not_forwarded() {
        // {"alg":"none"} . {"iss":"https://a","sub":"x"} . (no signature check here)
        let token = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2EiLCJzdWIiOiJ4In0.c2ln";
        let mut headers = vec![("authorization".to_owned(), format!("Bearer {token}"))];
        assert_eq!(verify(&mut headers.clone(), "https://b").unwrap_err().status, 401);
        let claims = verify(&mut headers, "https://a").unwrap().unwrap();
        assert_eq!(claims["sub"], "x");
        assert!(headers.is_empty());
        assert_eq!(
            verify(&mut vec![("authorization".into(), "Bearer abc".into())], "https://a").unwrap_err().status,
            401
        );
        assert!(verify(&mut vec![("authorization".into(), "Basic abc".into())], "https://a").unwrap().is_none());
    }
}
