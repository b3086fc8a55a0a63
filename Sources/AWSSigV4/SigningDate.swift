import Foundation

/// The request time as SigV4 writes it: `20150830T123600Z` for `X-Amz-Date`, `20150830` for the credential scope.
struct SigningDate {
    let amzDate: String
    let day: String

    init(_ date: Date) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        day = Self.pad(parts.year ?? 0, 4) + Self.pad(parts.month ?? 0, 2) + Self.pad(parts.day ?? 0, 2)
        amzDate = day + "T" + Self.pad(parts.hour ?? 0, 2) + Self.pad(parts.minute ?? 0, 2) + Self.pad(parts.second ?? 0, 2) + "Z"
    }

    private static func pad(_ number: Int, _ width: Int) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
