module Callback.Tests.FramingTests
