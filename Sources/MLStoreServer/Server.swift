import Hummingbird
import MLStoreCore
