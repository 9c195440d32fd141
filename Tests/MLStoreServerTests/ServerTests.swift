import Testing
@testable import MLStoreServer
