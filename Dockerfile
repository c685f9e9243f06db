# Callback sidecar image: the app compiled ahead of time (Native AOT) to one native executable, run as
# non-root on the runtime-deps image, which holds only what a native .NET program loads (no .NET runtime).
#
#   docker build -t callback-sidecar .
#   docker run --read-only -e Ami__Host=... -e Ami__Username=... -e Ami__Secret=... \
#              -e Originate__Channel='PJSIP/{number}@trunk' -p 8080:8080 callback-sidecar
#
# Why Native AOT: measured on the same machine, it is ready to answer in ~135 ms with ~31 MiB resident,
# where the framework-dependent build (`dotnet Callback.dll` on the ASP.NET Core image) needs ~517 ms and
# ~70 MiB (bench/startup/README.md). The JIT build is still what `dotnet build`, the tests and the demo run.
#
# The base images are the official mcr.microsoft.com/dotnet ones. The SDK's `-aot` variant adds what a
# Native AOT publish needs (clang, llvm, zlib1g-dev), so nothing is installed here. Its tag names the exact
# SDK because src/Callback/packages.aot.lock.json records the ILCompiler and ILLink packages of that SDK's
# runtime (the SDK picks their version, not Directory.Packages.props): when moving to a newer SDK, change
# the tag and re-create that lock file together (see docker/README.md). Build and runtime images are both
# Ubuntu 24.04 (noble), so the binary runs against the glibc it was linked with. Where no registry can be
# reached, docker/base-images.sh makes local stand-ins under the same tags (see docker/README.md).
#
# The framework-dependent image instead: see "Framework-dependent image" in docker/README.md.

ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0.401-noble-aot
ARG RUNTIME_IMAGE=mcr.microsoft.com/dotnet/runtime-deps:10.0

FROM ${SDK_IMAGE} AS build
WORKDIR /src
# Restore first, from the files that decide it, so the layer is reused while they are unchanged.
# (The wildcards make each file optional.) PublishAot=true makes the project use its AOT lock file.
COPY Directory.Build.props* Directory.Build.targets* Directory.Packages.props* global.json* NuGet.Config* nuget.config* ./
COPY src/Callback/Callback.fsproj src/Callback/packages.aot.lock.json src/Callback/
RUN dotnet restore src/Callback/Callback.fsproj -r linux-x64 -p:PublishAot=true --locked-mode
COPY src/ src/
# StripSymbols: the executable (20 MB) carries no debug symbols; they go to Callback.dbg (37 MB), which
# stays in the build stage. Exception stack traces still name the methods.
RUN dotnet publish src/Callback/Callback.fsproj -c Release -r linux-x64 -p:PublishAot=true --no-restore \
        -p:StripSymbols=true -p:CopyOutputSymbolsToPublishDirectory=false -o /app
# The call store's directory, empty: copied below with its owner, since the final image may have no shell.
RUN mkdir /data

FROM ${RUNTIME_IMAGE} AS final
WORKDIR /app
COPY --from=build /app ./
# The data volume (the call store's SQLite file): the root filesystem can be read-only, this stays
# writable. A new volume takes the owner of the image's /data: the app user.
COPY --from=build --chown=$APP_UID:$APP_UID /data /data
VOLUME /data
ENV Data__Path=/data
# APP_UID (1654, user `app`) comes from the base image.
USER $APP_UID
EXPOSE 8080
ENV ASPNETCORE_HTTP_PORTS=8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/app/Callback", "--health-check"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/Callback"]
