import SGDNoise

print("sgdnoise-cli \(SGDNoiseVersion.string)")
