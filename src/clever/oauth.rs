//! District token lookup from app credentials (`GET /oauth/tokens?owner_type=district&district=<id>`).
use serde::Deserialize;

use super::client::{Auth, CleverClient, ClientConfig, Token, oauth_base_for};
use super::error::CleverError;
use super::models::TokenEntry;

/// An app's `client_id` and `client_secret`.
#[derive(Clone, Debug)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: Token,
}

#[derive(Deserialize)]
struct TokensPage {
    #[serde(default)]
    data: Vec<TokenEntry>,
}

/// Looks up the district token for `district_id` with app credentials. `cfg.base_url` is the API
/// base (the oauth host is derived from it, see [`oauth_base_for`]); `cfg.token` is not used.
pub async fn lookup_district_token(
    cfg: &ClientConfig,
    app: &AppCredentials,
    district_id: &str,
) -> Result<Token, CleverError> {
    let mut cfg = cfg.clone();
    cfg.base_url = oauth_base_for(&cfg.base_url);
    let client = CleverClient::new(cfg)?;
    // The serializer is not Send: keep it out of the await points (the controller needs a Send future).
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("owner_type", "district")
        .append_pair("district", district_id)
        .finish();
    let path = format!("/oauth/tokens?{query}");
    let auth = Auth::Basic {
        client_id: &app.client_id,
        client_secret: &app.client_secret,
    };
    let body = client.fetch(&path, auth).await?;
    let page: TokensPage = serde_json::from_slice(&body).map_err(|e| CleverError::InvalidBody {
        path: "/oauth/tokens".into(),
        detail: format!("unexpected shape ({})", e.classify_label()),
    })?;
    page.data
        .into_iter()
        .find(|t| t.owner.id == district_id && !t.access_token.is_empty())
        .map(|t| Token::new(t.access_token))
        .ok_or_else(|| CleverError::NoDistrictToken {
            district_id: district_id.to_owned(),
        })
}

trait ClassifyLabel {
    fn classify_label(&self) -> &'static str;
}

impl ClassifyLabel for serde_json::Error {
    fn classify_label(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Eof => "truncated",
            serde_json::error::Category::Syntax => "not JSON",
            _ => "wrong shape",
        }
    }
}
