# Callback sidecar image: build with the .NET SDK, run on the ASP.NET Core runtime as non-root.
#
#   docker build -t callback-sidecar .
#   docker run --read-only -e Ami__Host=... -e Ami__Username=... -e Ami__Secret=... \
#              -e Originate__Channel='PJSIP/{number}@trunk' -p 8080:8080 callback-sidecar
#
# The base images are the official mcr.microsoft.com/dotnet ones. Where no registry can be
# reached, docker/base-images.sh makes local stand-ins under the same tags (see docker/README.md).
# No distribution packages are installed here: the image works on either.

ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG RUNTIME_IMAGE=mcr.microsoft.com/dotnet/aspnet:10.0

FROM ${SDK_IMAGE} AS build
WORKDIR /src
# Restore first, from the files that decide it, so the layer is reused while they are unchanged.
# (The wildcards make each file optional.)
COPY Directory.Build.props* Directory.Build.targets* Directory.Packages.props* global.json* NuGet.Config* nuget.config* ./
COPY src/Callback/Callback.fsproj src/Callback/packages.lock.json src/Callback/
RUN dotnet restore src/Callback/Callback.fsproj --locked-mode
COPY src/ src/
RUN dotnet publish src/Callback/Callback.fsproj -c Release -o /app --no-restore

FROM ${RUNTIME_IMAGE} AS final
WORKDIR /app
COPY --from=build /app ./
# APP_UID (1654, user `app`) comes from the base image.
USER $APP_UID
EXPOSE 8080
ENV ASPNETCORE_HTTP_PORTS=8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["dotnet", "/app/Callback.dll", "--health-check"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["dotnet", "/app/Callback.dll"]
