import CRMConfig

extension ConfigLoader {
    /// The problems a configuration text has, as `path: message` lines; empty when it loads.
    func problems(_ yaml: String) -> [String] {
        do {
            _ = try load(yaml: yaml)
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }
}
