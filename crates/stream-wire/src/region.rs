//! Stream's regions and the API host each maps to.

/// Regions a `stream.region` may name: the REST docs' three (`us-east`, `eu-west`, `singapore`)
/// and the ones the official clients and the Feeds v2 docs also know.
pub const KNOWN_REGIONS: &[&str] = &[
    "us-east",
    "eu-west",
    "singapore",
    "ohio",
    "dublin",
    "tokyo",
    "mumbai",
    "sydney",
    "oregon",
    "jakarta",
];

/// The base URL for a known region, `https://{region}-api.stream-io-api.com`; `None` otherwise.
pub fn base_url(region: &str) -> Option<String> {
    KNOWN_REGIONS
        .contains(&region)
        .then(|| format!("https://{region}-api.stream-io-api.com"))
}

/// Stream's analytics host: one for every region (stream-python's `base_analytics_url`,
/// stream-go2 and stream-js without a location).
pub const ANALYTICS_URL: &str = "https://analytics.stream-io-api.com";

/// The personalization host for a known region, `https://{region}-personalization.stream-io-api.com`
/// (stream-js `getBaseUrl`, stream-net); `None` otherwise.
pub fn personalization_url(region: &str) -> Option<String> {
    KNOWN_REGIONS
        .contains(&region)
        .then(|| format!("https://{region}-personalization.stream-io-api.com"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_regions_map_to_their_personalization_host_and_analytics_has_one() {
        assert_eq!(
            personalization_url("us-east").as_deref(),
            Some("https://us-east-personalization.stream-io-api.com")
        );
        assert_eq!(
            personalization_url("tokyo").as_deref(),
            Some("https://tokyo-personalization.stream-io-api.com")
        );
        assert_eq!(personalization_url("mars"), None);
        assert_eq!(ANALYTICS_URL, "https://analytics.stream-io-api.com");
    }

    #[test]
    fn known_regions_map_to_their_api_host() {
        assert_eq!(
            base_url("us-east").as_deref(),
            Some("https://us-east-api.stream-io-api.com")
        );
        assert_eq!(
            base_url("eu-west").as_deref(),
            Some("https://eu-west-api.stream-io-api.com")
        );
        assert_eq!(
            base_url("singapore").as_deref(),
            Some("https://singapore-api.stream-io-api.com")
        );
        for r in KNOWN_REGIONS {
            assert!(base_url(r).is_some());
        }
    }

    #[test]
    fn an_unknown_region_has_no_host() {
        assert_eq!(base_url("mars"), None);
        assert_eq!(base_url("US-EAST"), None);
        assert_eq!(base_url(""), None);
    }
}
