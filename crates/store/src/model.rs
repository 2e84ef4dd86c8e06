use auditrelay_core::TypeFilter;

/// What became of one appended event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    pub id: String,
    pub offset: u64,
    /// The tenant already had an event with this client id; `offset` is the original one.
    pub duplicate: bool,
}

#[derive(Debug, Clone)]
pub struct ReadQuery {
    pub tenant: String,
    pub after: u64,
    pub limit: usize,
    pub filter: TypeFilter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

/// A key to store: only its SHA-256 hash, never the secret.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub hash: [u8; 32],
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub hash: [u8; 32],
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}
