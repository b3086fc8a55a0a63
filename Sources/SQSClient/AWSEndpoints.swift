/// The default endpoints of AWS services by region, across AWS's partitions.
public enum AWSEndpoints {
    /// The DNS suffix of `region`'s partition: `amazonaws.com` for the commercial regions (and GovCloud), and the
    /// suffixes of China, the European Sovereign Cloud and the isolated partitions.
    public static func dnsSuffix(forRegion region: String) -> String {
        let partitions: [(prefix: String, suffix: String)] = [
            ("cn-", "amazonaws.com.cn"), ("eusc-", "amazonaws.eu"), ("us-isob-", "sc2s.sgov.gov"), ("us-isof-", "csp.hci.ic.gov"),
            ("eu-isoe-", "cloud.adc-e.uk"), ("us-iso-", "c2s.ic.gov"),
        ]
        return partitions.first { region.hasPrefix($0.prefix) }?.suffix ?? "amazonaws.com"
    }

    /// `https://<service>.<region>.<suffix>`.
    public static func url(service: String, region: String) -> String {
        "https://\(service).\(region).\(dnsSuffix(forRegion: region))"
    }
}
