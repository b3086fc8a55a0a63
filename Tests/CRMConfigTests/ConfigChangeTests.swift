import CRMConfig
import CRMCore
import Testing

/// What a reload from one configuration to another does: switched in place, restarted, or refused.
@Suite("Configuration changes at runtime")
struct ConfigChangeTests {
    let loader = ConfigLoader(environment: [:])

    static func yaml(
        store: String = "/tmp/crm.sqlite", listen: String = "127.0.0.1:8080", prefetch: Int = 100, extraSource: String = "",
        mapping: String = "USER_UPDATE: [ { update_contact: { list: 1 } } ]", reload: String = "", httpEventType: String = "CUSTOM_ORDER"
    ) -> String {
        """
        store: { sqlite: { path: "\(store)" } }
        http: { listen: "\(listen)" }
        sources:
          - name: a
            rabbitmq: { url: "amqp://127.0.0.1:5672/", queue: qa, prefetch: \(prefetch) }
          - name: b
            rabbitmq: { url: "amqp://127.0.0.1:5672/", queue: qb }
          - name: shop
            http: { endpoint: shop-endpoint-1, auth: none, event_type: \(httpEventType), contact_id: body.email }
        \(extraSource)
        attributes:
          - { name: seq, headers: [seq] }
        mappings:
          \(mapping)
        \(reload)
        """
    }

    func change(_ old: String, _ new: String) throws -> ConfigChange {
        ConfigChange(from: try loader.load(yaml: old), to: try loader.load(yaml: new))
    }

    @Test func theSameTextChangesNothing() throws {
        let change = try change(Self.yaml(), Self.yaml())
        #expect(change.isEmpty)
        #expect(change.effects == ["nothing the daemon uses changed"])
    }

    @Test func aMappingChangeSwitchesInPlaceAndRestartsNoSource() throws {
        let change = try change(Self.yaml(), Self.yaml(mapping: "USER_UPDATE: [ { update_contact: { list: 2 } } ]"))
        #expect(change.mappingChanged)
        #expect(change.refusals.isEmpty)
        #expect(change.restartedSources.isEmpty && change.addedSources.isEmpty && change.removedSources.isEmpty)
        #expect(!change.httpIntegrationsChanged)
    }

    @Test func aChangedSourceRestartsAloneAndNewAndRemovedSourcesAreNamed() throws {
        let extra = "  - name: c\n    rabbitmq: { url: \"amqp://127.0.0.1:5672/\", queue: qc }"
        let change = try change(Self.yaml(extraSource: extra), Self.yaml(prefetch: 500))
        #expect(change.restartedSources == ["a"])
        #expect(change.removedSources == ["c"])
        #expect(change.addedSources.isEmpty)
        #expect(!change.mappingChanged)
        let back = try self.change(Self.yaml(prefetch: 500), Self.yaml(extraSource: extra))
        #expect(back.restartedSources == ["a"])
        #expect(back.addedSources == ["c"])
        #expect(back.effects.contains("source c: started"))
    }

    /// The topology a source consumes is part of the source: adding shards, changing their number, the exchange or
    /// the hash header restarts it (stopped gracefully, then it declares and consumes the new topology).
    @Test func aChangeOfShardsRestartsTheSource() throws {
        func sharded(_ settings: String) -> String {
            Self.yaml(extraSource: "  - name: c\n    rabbitmq: { url: \"amqp://127.0.0.1:5672/\", queue: qc\(settings) }")
        }
        for (old, new) in [
            ("", ", shards: 4"), (", shards: 4", ""), (", shards: 4", ", shards: 8"),
            (", shards: 4", ", shards: 4, shard_exchange: qc.hash"), (", shards: 4", ", shards: 4, shard_by_header: contact_id"),
        ] {
            let change = try change(sharded(old), sharded(new))
            #expect(change.restartedSources == ["c"], "\(old) -> \(new)")
            #expect(change.refusals.isEmpty && change.addedSources.isEmpty && change.removedSources.isEmpty)
        }
        #expect(try change(sharded(", shards: 4"), sharded(", shards: 4")).isEmpty)
    }

    @Test func anHTTPIntegrationChangeSwapsTheTableWithoutRestartingBrokerSources() throws {
        let change = try change(Self.yaml(), Self.yaml(httpEventType: "CUSTOM_REFUND"))
        #expect(change.httpIntegrationsChanged)
        #expect(change.restartedSources.isEmpty)
        #expect(change.refusals.isEmpty)
    }

    @Test func aStoreChangeIsRefusedWithItsPath() throws {
        let change = try change(Self.yaml(), Self.yaml(store: "/tmp/other.sqlite", prefetch: 500))
        #expect(change.refusals.map(\.path) == ["store"])
        #expect(change.refusals.first?.message.contains("needs a restart") == true)
        #expect(change.restartedSources == ["a"], "the rest is still computed, for validate-config --against")
    }

    @Test func anHTTPServerAddressChangeIsRefused() throws {
        let change = try change(Self.yaml(), Self.yaml(listen: "127.0.0.1:9090"))
        #expect(change.refusals.map(\.path) == ["http"])
        #expect(change.refusals.first?.message.contains("127.0.0.1:9090") == true)
    }

    @Test func theReloadSectionIsReadAndChecked() throws {
        let config = try loader.load(yaml: Self.yaml(reload: "reload: { watch_file: false, watch_interval: 250ms }"))
        #expect(config.reload == ReloadConfig(watchFile: false, watchIntervalMilliseconds: 250))
        #expect(try loader.load(yaml: Self.yaml()).reload == ReloadConfig(watchFile: true, watchIntervalMilliseconds: 1_000))
        #expect(throws: ConfigError.self) { try loader.load(yaml: Self.yaml(reload: "reload: { watch_interval: 10ms }")) }
        do {
            _ = try loader.load(yaml: Self.yaml(reload: "reload: { watch_interval: soon, watch_file: maybe }"))
            Issue.record("an invalid reload section was accepted")
        } catch {
            #expect(error.problems.map(\.path).sorted() == ["reload.watch_file", "reload.watch_interval"])
        }
        let change = try change(Self.yaml(), Self.yaml(reload: "reload: { watch_interval: 2s }"))
        #expect(change.reloadSettingsChanged)
        #expect(change.effects == ["reload: the new watch settings take effect at the next start"])
    }

    @Test func millisecondDurations() {
        #expect(DurationText.milliseconds("250ms") == 250)
        #expect(DurationText.milliseconds("2s") == 2_000)
        #expect(DurationText.milliseconds("3") == 3_000)
        #expect(DurationText.milliseconds("1m") == 60_000)
        #expect(DurationText.milliseconds("-1ms") == nil)
        #expect(DurationText.milliseconds("later") == nil)
    }
}

@Suite("SQLite store settings")
struct SQLiteStoreSettingsTests {
    let loader = ConfigLoader(environment: [:])

    @Test func durabilityBusyTimeoutAndCacheSize() throws {
        let config = try loader.load(yaml: #"store: { sqlite: { path: "/tmp/x.sqlite", durability: normal, busy_timeout: 2s, cache_size: 32MiB } }"#)
        #expect(config.store == .sqlite(SQLiteStoreConfig(path: "/tmp/x.sqlite", busyTimeoutMilliseconds: 2_000, synchronousFull: false, cacheBytes: 32 << 20)))
        #expect(try loader.load(yaml: "store: { sqlite: { path: /tmp/y.sqlite } }").store == .sqlite(SQLiteStoreConfig(path: "/tmp/y.sqlite")))
        #expect(SQLiteStoreConfig().cacheBytes == 16 << 20)
        do {
            _ = try loader.load(yaml: "store: { sqlite: { cache_size: 1KiB } }")
            Issue.record("a 1 KiB cache was accepted")
        } catch {
            #expect(error.problems.map(\.description) == [#"store.sqlite.cache_size: expected a size from 256KiB to 4GiB such as 4MiB, got "1KiB""#])
        }
    }

    @Test func commitInterval() throws {
        #expect(SQLiteStoreConfig().commitIntervalMilliseconds == 2)
        let config = try loader.load(yaml: "store: { sqlite: { path: /tmp/x.sqlite, commit_interval: 12ms } }")
        #expect(config.store == .sqlite(SQLiteStoreConfig(path: "/tmp/x.sqlite", commitIntervalMilliseconds: 12)))
        #expect(try loader.load(yaml: "store: { sqlite: { path: /tmp/x.sqlite, commit_interval: 0 } }").store
            == .sqlite(SQLiteStoreConfig(path: "/tmp/x.sqlite", commitIntervalMilliseconds: 0)))
        do {
            _ = try loader.load(yaml: "store: { sqlite: { commit_interval: 2s } }")
            Issue.record("a commit interval of 2 s was accepted")
        } catch {
            #expect(error.problems.map(\.description) == [#"store.sqlite.commit_interval: expected a duration from 0ms to 1s such as 5ms, got "2s""#])
        }
    }
}
